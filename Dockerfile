# health-node: one provider node. Build: docker build -t health-node .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish FhirGateway/Health.FhirGateway.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
RUN useradd --uid 10001 --create-home node && mkdir -p /data && chown node /data
USER node
VOLUME /data
EXPOSE 8080 9080
ENTRYPOINT ["dotnet", "health-node.dll"]

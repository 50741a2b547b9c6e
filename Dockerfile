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
# The node answers /healthz when up; compose checks readiness through `health-node status` with the consortium CA.
HEALTHCHECK --interval=15s --timeout=5s --retries=3 CMD ["dotnet", "health-node.dll", "status", "--url", "https://127.0.0.1:8080", "--cacert", "/certs/consortium-ca.pem", "--json"]
ENTRYPOINT ["dotnet", "health-node.dll"]

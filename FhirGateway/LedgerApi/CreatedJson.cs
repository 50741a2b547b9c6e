namespace Health.FhirGateway.LedgerApi;

/// <summary>
/// 201 Created with a small JSON body serialized before the headers are sent, so that it goes out
/// with its Content-Length in one write instead of chunked (the answer to every append).
/// </summary>
/// <param name="location">The created resource's path.</param>
/// <param name="body">The UTF-8 JSON body.</param>
internal sealed class CreatedJson(string location, byte[] body) : IResult
{
    /// <inheritdoc />
    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status201Created;
        response.Headers.Location = location;
        response.ContentType = "application/json; charset=utf-8";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, httpContext.RequestAborted).AsTask();
    }
}

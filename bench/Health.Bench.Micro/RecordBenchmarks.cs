using BenchmarkDotNet.Attributes;
using Health.FhirGateway.Fhir;
using Health.FhirGateway.Records;
using Hl7.Fhir.Model;

namespace Health.Bench.Micro;

/// <summary>
/// Per-resource costs of ingest: Firely parse and serialize, the AES-GCM envelope and the search
/// index, on a typical Synthea Observation. The envelope's share of the whole is the price of
/// encryption at rest.
/// </summary>
[MemoryDiagnoser]
public class RecordBenchmarks
{
    private readonly byte[] key = RecordCipher.NewDataKey();
    private readonly SearchIndexer indexer = new(RecordCipher.NewDataKey());
    private byte[] json = [];
    private Resource resource = null!;

    [GlobalSetup]
    public void Load()
    {
        resource = new Observation
        {
            Id = "af5597a6-304d-4c8f-b596-60d17d445714",
            Status = ObservationStatus.Final,
            Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "vital-signs")],
            Code = new CodeableConcept("http://loinc.org", "8302-2", "Body Height", "Body Height"),
            Subject = new ResourceReference("Patient/018f428e-34f6-4707-8009-5ad742f901e7"),
            Encounter = new ResourceReference("Encounter/a87b575f-a10e-4079-9e9e-e378729e422d"),
            Effective = new FhirDateTime("2011-10-14T23:37:54+00:00"),
            Issued = DateTimeOffset.Parse("2011-10-14T23:37:54.530+00:00", System.Globalization.CultureInfo.InvariantCulture),
            Value = new Quantity(176.35499866729558m, "cm", "http://unitsofmeasure.org"),
        };
        json = FhirJson.ToUtf8(resource);
    }

    [Benchmark]
    public Resource Parse() => FhirJson.Parse(json);

    [Benchmark]
    public byte[] Serialize() => FhirJson.ToUtf8(resource);

    [Benchmark]
    public byte[] Seal_envelope() => RecordCipher.Seal(key, json, "Observation/af5597a6/_history/1");

    [Benchmark]
    public int Index() => indexer.Index(resource).Tokens.Count;
}

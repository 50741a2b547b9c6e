using System.Globalization;
using System.Text.Json;
using Health.Consent;
using Health.Consent.Policy;
using Health.Ledger.Entries;

namespace Health.FhirGateway.Audit;

/// <summary>
/// Writes the FHIR R4 AuditEvent of a ledger entry, following IHE Basic Audit Log Patterns (BALP):
/// type and subtype, action, recorded (the entry's leader timestamp), outcome, the requesting
/// agent with its purpose of use and the deciding Consent as policy, the organisation, the source
/// node, and the patient by pseudonymous key. Extensions carry the ledger index and leaf hash.
/// The JSON is a pure function of the entry and its decision, so a verifier regenerates it byte for
/// byte from the ledger alone.
/// </summary>
public static class AuditEventWriter
{
    /// <summary>Base of this product's extension and identifier URLs.</summary>
    public const string ExtensionBase = "https://health-ledger.invalid/fhir/StructureDefinition/";

    /// <summary>The extension holding an event's ledger index.</summary>
    public const string LedgerIndexExtension = ExtensionBase + "ledger-index";

    /// <summary>The extension holding an event's ledger leaf hash (hex).</summary>
    public const string LeafHashExtension = ExtensionBase + "leaf-hash";

    private static readonly HashSet<string> Audited =
    [
        ConsentEntryKinds.AccessRequested.Name, ConsentEntryKinds.ConsentGranted.Name, ConsentEntryKinds.ConsentRevoked.Name,
        LedgerEntryKinds.NodeAdmitted.Name, LedgerEntryKinds.NodeRemoved.Name, LedgerEntryKinds.GovernanceVote.Name, LedgerEntryKinds.Checkpoint.Name,
    ];

    /// <summary>Whether entries of a kind become AuditEvents.</summary>
    public static bool Audits(string kind) => Audited.Contains(kind);

    /// <summary>The AuditEvent of an entry, as UTF-8 JSON on one line.</summary>
    /// <param name="entry">The ledger entry; its kind must be audited.</param>
    /// <param name="leafHash">The entry's Merkle leaf hash.</param>
    /// <param name="decision">For an access request, the decision the ledger applied.</param>
    public static byte[] Write(LedgerEntry entry, byte[] leafHash, ConsentDecision? decision) => WriteShared(entry, leafHash, decision).ToArray();

    /// <summary>The same, in this thread's buffer: valid until the next call on this thread.</summary>
    public static ReadOnlySpan<byte> WriteShared(LedgerEntry entry, byte[] leafHash, ConsentDecision? decision)
    {
        // One buffer and writer per thread: writing an event must not cost more than checking it.
        var buffer = Buffer ??= new System.Buffers.ArrayBufferWriter<byte>(4096);
        var json = Writer ??= new Utf8JsonWriter(buffer);
        buffer.ResetWrittenCount();
        json.Reset(buffer);
        {
            json.WriteStartObject();
            json.WriteString("resourceType", "AuditEvent");
            json.WriteString("id", $"ledger-{entry.Index.ToString(CultureInfo.InvariantCulture)}");
            if (decision is { BreakGlass: true })
            {
                json.WriteStartObject("meta");
                json.WriteStartArray("security");
                Coding(json, "http://terminology.hl7.org/CodeSystem/v3-ActCode", "BTG", "break the glass");
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteStartArray("extension");
            Extension(json, LedgerIndexExtension, entry.Index.ToString(CultureInfo.InvariantCulture));
            Extension(json, LeafHashExtension, Convert.ToHexStringLower(leafHash));
            json.WriteEndArray();
            if (entry.Kind == ConsentEntryKinds.AccessRequested.Name)
                WriteAccess(json, entry, decision ?? throw new ArgumentNullException(nameof(decision), "An access request needs its decision."));
            else if (entry.Kind == ConsentEntryKinds.ConsentGranted.Name || entry.Kind == ConsentEntryKinds.ConsentRevoked.Name)
                WriteConsent(json, entry);
            else if (entry.Kind == LedgerEntryKinds.Checkpoint.Name)
                WriteCheckpoint(json, entry);
            else
                WriteGovernance(json, entry);
            json.WriteEndObject();
        }

        json.Flush();
        return buffer.WrittenSpan;
    }

    [ThreadStatic]
    private static System.Buffers.ArrayBufferWriter<byte>? Buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? Writer;

    private static void WriteAccess(Utf8JsonWriter json, LedgerEntry entry, ConsentDecision decision)
    {
        var fields = entry.Fields;
        var interaction = fields["interaction"];
        Type(json, "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation");
        json.WriteStartArray("subtype");
        var (subtype, display) = interaction switch
        {
            "read" => ("read", "read"),
            "vread" => ("vread", "vread"),
            "history" => ("history-instance", "history-instance"),
            "search" => ("search-type", "search-type"),
            _ => ("operation", "operation"),
        };
        Coding(json, "http://hl7.org/fhir/restful-interaction", subtype, display);
        json.WriteEndArray();
        json.WriteString("action", interaction is "search" or "everything" ? "E" : "R");
        Recorded(json, entry);
        json.WriteString("outcome", decision.Permitted ? "0" : "4");
        json.WriteString("outcomeDesc", decision.Reason);
        json.WriteStartArray("purposeOfEvent");
        Concept(json, PurposeOfUse.System, fields["purpose"]);
        json.WriteEndArray();

        json.WriteStartArray("agent");
        json.WriteStartObject();
        json.WritePropertyName("type");
        json.WriteStartObject();
        json.WriteStartArray("coding");
        Coding(json, "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", "information recipient");
        json.WriteEndArray();
        json.WriteEndObject();
        Who(json, fields["requester"]);
        json.WriteBoolean("requestor", true);
        if (decision.ConsentId is { } consentId)
        {
            json.WriteStartArray("policy");
            json.WriteStringValue($"Consent/{consentId}");
            json.WriteEndArray();
        }

        json.WriteStartArray("purposeOfUse");
        Concept(json, PurposeOfUse.System, fields["purpose"]);
        json.WriteEndArray();
        json.WriteEndObject();
        Organization(json, fields["organization"]);
        json.WriteEndArray();

        Source(json, fields.GetValueOrDefault("gateway") ?? fields["custodian"]);
        json.WriteStartArray("entity");
        Patient(json, fields["patientKey"]);
        json.WriteStartObject();
        CodingProperty(json, "type", "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object");
        CodingProperty(json, "role", "http://terminology.hl7.org/CodeSystem/object-role", "24", "Query");
        json.WriteString("description", $"{interaction} {fields["scope"]} at {fields["custodian"]}");
        json.WriteEndObject();
        json.WriteEndArray();
    }

    private static void WriteConsent(Utf8JsonWriter json, LedgerEntry entry)
    {
        var granted = entry.Kind == ConsentEntryKinds.ConsentGranted.Name;
        Type(json, "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation");
        json.WriteStartArray("subtype");
        Coding(json, "http://hl7.org/fhir/restful-interaction", granted ? "create" : "update", granted ? "create" : "update");
        json.WriteEndArray();
        json.WriteString("action", granted ? "C" : "U");
        Recorded(json, entry);
        json.WriteString("outcome", "0");
        json.WriteString("outcomeDesc", granted ? "Consent in force." : "Consent revoked.");
        json.WriteStartArray("agent");
        json.WriteStartObject();
        json.WritePropertyName("who");
        Identifier(json, "urn:health-ledger:patient-key", entry.Fields["patientKey"]);
        json.WriteBoolean("requestor", true);
        json.WriteEndObject();
        json.WriteEndArray();
        Source(json, "consortium");
        json.WriteStartArray("entity");
        Patient(json, entry.Fields["patientKey"]);
        json.WriteStartObject();
        json.WritePropertyName("what");
        json.WriteStartObject();
        json.WriteString("reference", $"Consent/{entry.Fields["consentId"]}");
        json.WriteEndObject();
        CodingProperty(json, "type", "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object");
        json.WriteEndObject();
        json.WriteEndArray();
    }

    private static void WriteGovernance(Utf8JsonWriter json, LedgerEntry entry)
    {
        Type(json, "http://dicom.nema.org/resources/ontology/DCM", "110136", "Security Roles Changed");
        json.WriteString("action", "E");
        Recorded(json, entry);
        json.WriteString("outcome", "0");
        var description = entry.Kind == LedgerEntryKinds.GovernanceVote.Name
            ? $"{entry.Fields["voter"]} approves the proposal at ledger index {entry.Fields["proposal"]}"
            : $"Proposal: {(entry.Kind == LedgerEntryKinds.NodeAdmitted.Name ? "admit" : "remove")} {entry.Fields["nodeId"]}";
        json.WriteString("outcomeDesc", description);
        json.WriteStartArray("agent");
        json.WriteStartObject();
        json.WritePropertyName("who");
        Identifier(json, "urn:health-ledger:node", entry.Fields.GetValueOrDefault("voter") ?? "consortium");
        json.WriteBoolean("requestor", true);
        json.WriteEndObject();
        json.WriteEndArray();
        Source(json, "consortium");
        json.WriteStartArray("entity");
        json.WriteStartObject();
        json.WritePropertyName("what");
        Identifier(json, "urn:health-ledger:node", entry.Fields.GetValueOrDefault("nodeId") ?? entry.Fields["proposal"]);
        CodingProperty(json, "type", "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object");
        json.WriteEndObject();
        json.WriteEndArray();
    }

    private static void WriteCheckpoint(Utf8JsonWriter json, LedgerEntry entry)
    {
        Type(json, "urn:health-ledger:event-type", "checkpoint", "Signed ledger checkpoint");
        json.WriteString("action", "E");
        Recorded(json, entry);
        json.WriteString("outcome", "0");
        json.WriteString("outcomeDesc", $"Tree size {entry.Fields["treeSize"]}, root {entry.Fields["root"]}");
        json.WriteStartArray("agent");
        json.WriteStartObject();
        json.WritePropertyName("who");
        Identifier(json, "urn:health-ledger:node", entry.Fields["signer"]);
        json.WriteBoolean("requestor", false);
        json.WriteEndObject();
        json.WriteEndArray();
        Source(json, entry.Fields["signer"]);
    }

    private static void Recorded(Utf8JsonWriter json, LedgerEntry entry)
        => json.WriteString("recorded", DateTimeOffset.FromUnixTimeMilliseconds(entry.Timestamp).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));

    private static void Type(Utf8JsonWriter json, string system, string code, string display) => CodingProperty(json, "type", system, code, display);

    private static void Who(Utf8JsonWriter json, string requester)
    {
        json.WritePropertyName("who");
        if (requester.StartsWith("Practitioner/", StringComparison.Ordinal))
        {
            json.WriteStartObject();
            json.WriteString("reference", requester);
            json.WriteEndObject();
        }
        else
        {
            Identifier(json, "urn:health-ledger:subject", requester);
        }
    }

    private static void Organization(Utf8JsonWriter json, string organization)
    {
        json.WriteStartObject();
        json.WritePropertyName("type");
        json.WriteStartObject();
        json.WriteStartArray("coding");
        Coding(json, "http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID");
        json.WriteEndArray();
        json.WriteEndObject();
        json.WritePropertyName("who");
        Identifier(json, "urn:health-ledger:organization", organization);
        json.WriteBoolean("requestor", false);
        json.WriteEndObject();
    }

    private static void Source(Utf8JsonWriter json, string node)
    {
        json.WritePropertyName("source");
        json.WriteStartObject();
        json.WritePropertyName("observer");
        Identifier(json, "urn:health-ledger:node", node);
        json.WriteStartArray("type");
        Coding(json, "http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server");
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void Patient(Utf8JsonWriter json, string patientKey)
    {
        json.WriteStartObject();
        json.WritePropertyName("what");
        Identifier(json, "urn:health-ledger:patient-key", patientKey);
        CodingProperty(json, "type", "http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person");
        CodingProperty(json, "role", "http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient");
        json.WriteEndObject();
    }

    private static void Identifier(Utf8JsonWriter json, string system, string value)
    {
        json.WriteStartObject();
        json.WritePropertyName("identifier");
        json.WriteStartObject();
        json.WriteString("system", system);
        json.WriteString("value", value);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void Extension(Utf8JsonWriter json, string url, string value)
    {
        json.WriteStartObject();
        json.WriteString("url", url);
        json.WriteString("valueString", value);
        json.WriteEndObject();
    }

    private static void Concept(Utf8JsonWriter json, string system, string code)
    {
        json.WriteStartObject();
        json.WriteStartArray("coding");
        Coding(json, system, code, PurposeOfUse.Known.GetValueOrDefault(code, code));
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void CodingProperty(Utf8JsonWriter json, string name, string system, string code, string display)
    {
        json.WritePropertyName(name);
        Coding(json, system, code, display);
    }

    private static void Coding(Utf8JsonWriter json, string system, string code, string display)
    {
        json.WriteStartObject();
        json.WriteString("system", system);
        json.WriteString("code", code);
        json.WriteString("display", display);
        json.WriteEndObject();
    }
}

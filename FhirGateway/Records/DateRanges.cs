using System.Globalization;
using Hl7.Fhir.Model;

namespace Health.FhirGateway.Records;

/// <summary>FHIR dates, dateTimes, instants and periods as ranges of Unix milliseconds [low, high].</summary>
public static class DateRanges
{
    /// <summary>The range an element covers, or null when it is not a date.</summary>
    public static (long Low, long High)? Of(Base value) => value switch
    {
        Period period => Combine(period.Start is { } s ? Parse(s) : null, period.End is { } e ? Parse(e) : null),
        Date date when date.Value is { } text => Parse(text),
        FhirDateTime dateTime when dateTime.Value is { } text => Parse(text),
        Instant instant when instant.Value is { } moment => (moment.ToUnixTimeMilliseconds(), moment.ToUnixTimeMilliseconds()),
        _ => null,
    };

    /// <summary>
    /// Parses a FHIR date or dateTime of any precision: a partial date covers its whole year,
    /// month or day (UTC); a full dateTime is one instant.
    /// </summary>
    public static (long Low, long High)? Parse(string text)
    {
        DateTimeOffset start, end;
        switch (text.Length)
        {
            case 4 when int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var year) && year >= 1:
                start = new DateTimeOffset(year, 1, 1, 0, 0, 0, TimeSpan.Zero);
                end = start.AddYears(1);
                break;
            case 7 when DateTimeOffset.TryParseExact(text, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var month):
                start = month;
                end = start.AddMonths(1);
                break;
            case 10 when DateTimeOffset.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var day):
                start = day;
                end = start.AddDays(1);
                break;
            default:
                if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var moment))
                    return null;
                return (moment.ToUnixTimeMilliseconds(), moment.ToUnixTimeMilliseconds());
        }

        return (start.ToUnixTimeMilliseconds(), end.ToUnixTimeMilliseconds() - 1);
    }

    private static (long Low, long High)? Combine((long Low, long High)? start, (long Low, long High)? end)
        => (start, end) switch
        {
            (null, null) => null,
            ({ } s, null) => (s.Low, long.MaxValue),
            (null, { } e) => (long.MinValue, e.High),
            ({ } s, { } e) => (s.Low, e.High),
        };
}

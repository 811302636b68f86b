//! Reading and printing times: durations (`90d`), dates (`2027-01-31`), unix seconds.

use anyhow::{Context, Result, bail};

/// Reads an expiry: a duration from now (`90d`, `12h`, `2w`) or a date (the end of that day,
/// local time). Returns unix seconds.
pub(crate) fn parse_expiry(text: &str, now: i64) -> Result<i64> {
    let text = text.trim();
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let end = date
            .to_zoned(jiff::tz::TimeZone::system())
            .context("invalid date")?
            .tomorrow()
            .context("invalid date")?
            .start_of_day()
            .context("invalid date")?;
        return Ok(end.timestamp().as_second());
    }
    let span = parse_duration(text).map_err(|_| not_a_time(text))?;
    Ok(now + span)
}

/// The one error for a time that is neither a date nor a duration, whichever option took it.
fn not_a_time(text: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "invalid date or duration \"{text}\": write a date as YYYY-MM-DD (2027-05-12), or a duration \
         such as 7d, 12h or 2w"
    )
}

/// Reads a duration such as `90d`, `12h`, `2w`, `30m`; returns seconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().with_context(|| {
        format!("invalid duration \"{text}\": expected a number and a unit, such as 90d, 12h or 2w")
    })?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("invalid duration \"{text}\": the unit must be s, m, h, d or w"),
    };
    n.checked_mul(unit_seconds)
        .filter(|s| *s > 0)
        .context("the duration must be positive and not absurdly long")
}

/// Reads `--since`: a date, or a duration back from now.
pub(crate) fn parse_since(text: &str, now: i64) -> Result<i64> {
    if let Ok(date) = text.trim().parse::<jiff::civil::Date>() {
        return Ok(date.to_zoned(jiff::tz::TimeZone::system())?.timestamp().as_second());
    }
    Ok(now - parse_duration(text).map_err(|_| not_a_time(text.trim()))?)
}

/// `--since` as the date purchases are compared with (`YYYY-MM-DD`, local time): a date, or
/// the day a duration back from `now` falls on.
pub(crate) fn since_date(text: &str, now: i64) -> Result<String> {
    let at = parse_since(text, now)?;
    let date = jiff::Timestamp::from_second(at)
        .context("the date is out of range")?
        .to_zoned(jiff::tz::TimeZone::system())
        .date();
    Ok(date.to_string())
}

/// Unix seconds as an RFC 3339 timestamp (UTC).
pub(crate) fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map(|t| t.to_string()).unwrap_or_else(|_| seconds.to_string())
}

/// Unix seconds as a short local date and time.
pub(crate) fn local(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

//! Reading the `time` column: a mapping's strftime format and the zone of times written
//! without an offset (IANA name, `UTC` or a fixed offset).

/// The zone of times written without an offset.
#[derive(Debug, Clone, Copy, Default)]
enum Zone {
    #[default]
    Utc,
    Fixed(chrono::FixedOffset),
    Iana(chrono_tz::Tz),
}

impl Zone {
    fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("utc") || name == "Z" {
            return Ok(Zone::Utc);
        }
        if let Some(sign @ ('+' | '-')) = name.chars().next() {
            // `+HH`, `+HHMM` or `+HH:MM`.
            let rest = &name[1..];
            let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
            let (h, m) = match (rest.get(..2), rest.get(2..)) {
                (Some(h), Some("")) if digits(h) => (h.parse::<i32>().ok(), Some(0)),
                (Some(h), Some(m)) if digits(h) => {
                    let m = m.strip_prefix(':').unwrap_or(m);
                    (h.parse::<i32>().ok(), if digits(m) { m.parse::<i32>().ok() } else { None })
                }
                _ => (None, None),
            };
            let offset = match (h, m) {
                (Some(h), Some(m)) if h <= 23 && m <= 59 => {
                    let secs = (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 };
                    chrono::FixedOffset::east_opt(secs)
                }
                _ => None,
            };
            return offset.map(Zone::Fixed).ok_or_else(|| {
                format!("time_zone: `{name}` is not an offset like `+02:00` or `-0530`")
            });
        }
        name.parse::<chrono_tz::Tz>().map(Zone::Iana).map_err(|_| {
            format!(
                "time_zone: `{name}` is not a time zone (an IANA name like `Europe/Paris`, `UTC`, or an offset like `+02:00`)"
            )
        })
    }

    /// Unix milliseconds of a local time in this zone. A time skipped by a daylight-saving
    /// change is refused; a repeated one is the earlier instant.
    fn millis(&self, local: chrono::NaiveDateTime, raw: &str) -> Result<i64, String> {
        use chrono::TimeZone as _;
        let t = match self {
            Zone::Utc => Some(local.and_utc().timestamp_millis()),
            Zone::Fixed(o) => {
                o.from_local_datetime(&local).earliest().map(|t| t.timestamp_millis())
            }
            Zone::Iana(tz) => {
                tz.from_local_datetime(&local).earliest().map(|t| t.timestamp_millis())
            }
        };
        t.ok_or_else(|| {
            format!("`{raw}` does not exist in {} (a daylight-saving gap)", self.name())
        })
    }

    fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Fixed(o) => o.to_string(),
            Zone::Iana(tz) => tz.name().into(),
        }
    }
}

/// Reads the `time` column: with the mapping's strftime format when it has one, and the
/// mapping's zone for times without an offset.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimeReader {
    format: Option<String>,
    zone: Zone,
}

impl TimeReader {
    /// Checks the mapping's `time_format` and `time_zone`; errors name the field.
    pub(crate) fn new(format: Option<&str>, zone: Option<&str>) -> Result<Self, String> {
        let zone = zone.map(Zone::parse).transpose()?.unwrap_or_default();
        if let Some(f) = format {
            use chrono::format::{Item, StrftimeItems};
            if f.trim().is_empty() || StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
                return Err(format!(
                    "time_format: `{f}` is not a strftime format (e.g. `%d/%m/%Y %H:%M`)"
                ));
            }
            if !f.contains("%s")
                && !(["%Y", "%y", "%G", "%F", "%D", "%x", "%c", "%+"].iter().any(|d| f.contains(d)))
            {
                return Err(format!("time_format: `{f}` has no year (`%Y`, `%y`, `%F`...)"));
            }
        }
        Ok(Self { format: format.map(str::to_owned), zone })
    }

    /// Unix milliseconds of `raw`.
    pub(crate) fn parse(&self, raw: &str) -> Result<i64, String> {
        match &self.format {
            Some(f) => self.parse_with(f, raw),
            None => self.parse_default(raw),
        }
    }

    fn parse_with(&self, format: &str, raw: &str) -> Result<i64, String> {
        use chrono::format::{Parsed, StrftimeItems, parse};
        let mut parsed = Parsed::new();
        parse(&mut parsed, raw, StrftimeItems::new(format))
            .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"))?;
        // An offset (or a Unix time) in the value wins over the mapping's zone.
        if parsed.offset().is_some() || parsed.timestamp().is_some() {
            return parsed
                .to_datetime()
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"));
        }
        let date = parsed
            .to_naive_date()
            .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"))?;
        // A format without a time of day means midnight.
        let time = if parsed.hour_div_12().is_some() || parsed.hour_mod_12().is_some() {
            parsed
                .to_naive_time()
                .map_err(|e| format!("`{raw}` does not match time_format `{format}`: {e}"))?
        } else {
            chrono::NaiveTime::MIN
        };
        self.zone.millis(date.and_time(time), raw)
    }

    /// RFC 3339, `YYYY-MM-DD HH:MM:SS` (in the mapping's zone, UTC by default) or Unix ms.
    fn parse_default(&self, raw: &str) -> Result<i64, String> {
        if let Ok(ms) = raw.parse::<i64>() {
            return Ok(ms);
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
            return Ok(t.timestamp_millis());
        }
        match chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S") {
            Ok(local) => self.zone.millis(local, raw),
            Err(_) => Err(format!(
                "`{raw}` is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS` {}, or Unix ms)",
                self.zone.name()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::import::Mapping;

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
    }

    #[test]
    fn a_mapping_format_and_iana_zone_read_local_times() {
        let r = TimeReader::new(Some("%d/%m/%Y %H:%M"), Some("Europe/Paris")).unwrap();
        // Summer time (UTC+2), then winter time (UTC+1).
        assert_eq!(r.parse("20/10/2026 10:00"), Ok(ms("2026-10-20T08:00:00Z")));
        assert_eq!(r.parse("02/11/2026 10:00"), Ok(ms("2026-11-02T09:00:00Z")));
        // The hour skipped by the spring change does not exist; the repeated one is the first.
        assert!(r.parse("29/03/2026 02:30").unwrap_err().contains("daylight-saving gap"));
        assert_eq!(r.parse("25/10/2026 02:30"), Ok(ms("2026-10-25T00:30:00Z")));
        let err = r.parse("2026-11-02 10:00").unwrap_err();
        assert!(err.contains("does not match time_format `%d/%m/%Y %H:%M`"), "{err}");
    }

    #[test]
    fn fixed_offsets_dates_alone_and_offsets_in_values() {
        let r = TimeReader::new(Some("%d/%m/%Y"), Some("-05:00")).unwrap();
        assert_eq!(r.parse("02/11/2026"), Ok(ms("2026-11-02T05:00:00Z")));
        let r = TimeReader::new(Some("%Y-%m-%d %H:%M %z"), Some("+0530")).unwrap();
        assert_eq!(r.parse("2026-11-02 10:00 +0100"), Ok(ms("2026-11-02T09:00:00Z")));
        // Without a format, the zone applies to `YYYY-MM-DD HH:MM:SS` only.
        let r = TimeReader::new(None, Some("+02")).unwrap();
        assert_eq!(r.parse("2026-11-02 10:00:00"), Ok(ms("2026-11-02T08:00:00Z")));
        assert_eq!(r.parse("2026-11-02T10:00:00Z"), Ok(ms("2026-11-02T10:00:00Z")));
        assert_eq!(r.parse("1793527200000"), Ok(1793527200000));
        let r = TimeReader::default();
        assert_eq!(r.parse("2026-11-02 10:00:00"), Ok(ms("2026-11-02T10:00:00Z")));
    }

    #[test]
    fn bad_formats_and_zones_name_the_mapping_field() {
        for zone in ["Europe/Pariss", "+25:00", "+2:0", "local"] {
            let err = TimeReader::new(None, Some(zone)).unwrap_err();
            assert!(err.starts_with("time_zone: "), "{zone}: {err}");
        }
        for format in ["%d/%m/%Y %Q", "", "%H:%M"] {
            let err = TimeReader::new(Some(format), None).unwrap_err();
            assert!(err.starts_with("time_format: "), "{format:?}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(
            &path,
            "kind: events\nfields: { event_id: a, lead_id: b, type: c, time: d }\ntime_zone: Mars/Olympus\n",
        )
        .unwrap();
        let err = Mapping::load(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("time_zone: `Mars/Olympus`"), "{err}");
    }
}

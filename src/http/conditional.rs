//! HTTP range and conditional request rules (RFC 9110, sections 13 and 14)
//! for stored media, as pure functions of the request headers and what is
//! known of the representation.

use axum::http::HeaderMap;
use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// What the server knows of a stored representation.
pub struct Representation<'a> {
    /// Strong entity tag, quotes included.
    pub etag: &'a str,
    /// Unix seconds.
    pub last_modified: i64,
    pub size: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole body.
    Full,
    /// 206 with `len` bytes from `start`.
    Partial { start: u64, len: u64 },
    /// 416: no byte of the requested range exists.
    Unsatisfiable,
}

/// `Last-Modified` / `If-Modified-Since` dates: IMF-fixdate, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn parse_http_date(raw: &str) -> Option<i64> {
    // RFC 2822 parsing accepts IMF-fixdate ("GMT" is an obsolete zone it
    // still knows).
    OffsetDateTime::parse(raw.trim(), &Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn header(h: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Weak comparison (If-None-Match): opaque tags equal, `W/` ignored.
fn matches_any(list: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let mine = bare(etag);
    list.split(',').any(|t| t.trim() == "*" || bare(t) == mine)
}

/// Decides the answer to a GET or HEAD of `rep` (`allow_range`: GET only).
pub fn plan(headers: &HeaderMap, rep: &Representation, allow_range: bool) -> Plan {
    if let Some(inm) = header(headers, IF_NONE_MATCH) {
        if matches_any(inm, rep.etag) {
            return Plan::NotModified;
        }
    } else if let Some(since) = header(headers, IF_MODIFIED_SINCE).and_then(parse_http_date)
        && rep.last_modified <= since
    {
        return Plan::NotModified;
    }
    let Some(range) = header(headers, RANGE).filter(|_| allow_range) else {
        return Plan::Full;
    };
    if let Some(cond) = header(headers, IF_RANGE) {
        let cond = cond.trim();
        // If-Range needs a strong match: an entity tag equal to ours (not
        // weak), or exactly our Last-Modified date.
        let current = if cond.starts_with('"') {
            cond == rep.etag
        } else {
            parse_http_date(cond) == Some(rep.last_modified)
        };
        if !current {
            return Plan::Full;
        }
    }
    byte_range(range, rep.size)
}

/// A single `bytes=` range. Several ranges get the whole body (allowed by
/// RFC 9110 and simpler for every client than multipart/byteranges); a
/// malformed header is ignored, as the RFC asks.
fn byte_range(raw: &str, size: u64) -> Plan {
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return Plan::Full;
    };
    if spec.contains(',') {
        return Plan::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), num(first), num(last)) {
        // bytes=-n: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                Plan::Unsatisfiable
            } else {
                let len = n.min(size);
                Plan::Partial {
                    start: size - len,
                    len,
                }
            }
        }
        // bytes=a- and bytes=a-b.
        (false, Some(a), b) if b.is_some() || last.trim().is_empty() => {
            if b.is_some_and(|b| b < a) {
                return Plan::Full;
            }
            if a >= size {
                return Plan::Unsatisfiable;
            }
            let end = b.map_or(size - 1, |b| b.min(size - 1));
            Plan::Partial {
                start: a,
                len: end - a + 1,
            }
        }
        _ => Plan::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ETAG: &str = "\"abc\"";

    fn rep() -> Representation<'static> {
        Representation {
            etag: ETAG,
            last_modified: 1_700_000_000,
            size: 100,
        }
    }

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn single_ranges_in_all_forms() {
        let p = |r: &str| plan(&with(&[("range", r)]), &rep(), true);
        assert_eq!(p("bytes=0-9"), Plan::Partial { start: 0, len: 10 });
        assert_eq!(p("bytes=90-"), Plan::Partial { start: 90, len: 10 });
        assert_eq!(p("bytes=-5"), Plan::Partial { start: 95, len: 5 });
        assert_eq!(p("bytes=-500"), Plan::Partial { start: 0, len: 100 });
        assert_eq!(p("bytes=95-500"), Plan::Partial { start: 95, len: 5 });
        assert_eq!(p("bytes=100-"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=0-1,5-6"), Plan::Full);
        assert_eq!(p("bytes=9-1"), Plan::Full);
        assert_eq!(p("items=0-1"), Plan::Full);
        assert_eq!(p("bytes=x-1"), Plan::Full);
        assert_eq!(
            plan(&with(&[("range", "bytes=0-9")]), &rep(), false),
            Plan::Full
        );
    }

    #[test]
    fn conditionals() {
        let p = |h: &[(&str, &str)]| plan(&with(h), &rep(), true);
        assert_eq!(p(&[("if-none-match", ETAG)]), Plan::NotModified);
        assert_eq!(
            p(&[("if-none-match", "W/\"abc\", \"x\"")]),
            Plan::NotModified
        );
        assert_eq!(p(&[("if-none-match", "\"other\"")]), Plan::Full);
        let date = http_date(1_700_000_000);
        assert_eq!(p(&[("if-modified-since", &date)]), Plan::NotModified);
        assert_eq!(
            p(&[("if-modified-since", &http_date(1_600_000_000))]),
            Plan::Full
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            p(&[("if-none-match", "\"x\""), ("if-modified-since", &date)]),
            Plan::Full
        );
        let ranged = |cond: &str| p(&[("range", "bytes=0-0"), ("if-range", cond)]);
        assert_eq!(ranged(ETAG), Plan::Partial { start: 0, len: 1 });
        assert_eq!(ranged("W/\"abc\""), Plan::Full);
        assert_eq!(ranged(&date), Plan::Partial { start: 0, len: 1 });
        assert_eq!(ranged(&http_date(1)), Plan::Full);
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
    }
}

//! The paging parameters every paged route takes, checked once: `limit`
//! (a whole number from 1 to 100, default 100) and `cursor` (the previous
//! page's `nextCursor`, bound to the query that issued it).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::{ServiceError, ServiceResult, cursor};
use crate::catalog::paging::MAX_PAGE;
use crate::model::schema::{self, schema_type};
use crate::model::whole::parse_whole;

/// `limit` and `cursor` of the paged list routes, as they arrived, before
/// validation: the one declaration the HTTP layer parses them by and the
/// OpenAPI document (hence the unknown-parameter check) lists them from.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1-100 (default 100).
    #[param(value_type = Option<LimitParam>, inline)]
    pub limit: Option<String>,
    /// The previous page's nextCursor (only valid for the same route,
    /// connection, list and filters).
    #[param(value_type = Option<CursorParam>, inline)]
    pub cursor: Option<String>,
}

schema_type!(
    /// `limit`: a whole number from 1 to [`MAX_PAGE`].
    pub LimitParam => schema::whole(1, u64::from(MAX_PAGE))
);

schema_type!(
    /// `cursor`: opaque, as a previous page's `nextCursor` gave it (unpadded
    /// base64url, the alphabet [`cursor::encode_for`] writes).
    pub CursorParam => serde_json::json!({
        "type": "string",
        "minLength": 1,
        "pattern": cursor::PATTERN,
    })
);

fn bad(name: &str, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::BadRequest(format!("invalid query parameter {name}: {why}"))
}

/// The page size: 1 to 100, 100 when not given.
pub fn limit(raw: Option<&str>) -> ServiceResult<u32> {
    let Some(raw) = raw else { return Ok(MAX_PAGE) };
    parse_whole(raw, 1, u64::from(MAX_PAGE))
        .map(|n| n as u32)
        .map_err(|e| bad("limit", e))
}

/// Where to resume, from a cursor issued for the result set `shape`.
pub fn after<K: DeserializeOwned>(raw: Option<&str>, shape: &str) -> ServiceResult<Option<K>> {
    raw.map(|raw| cursor::decode_for(raw, shape).map_err(|e| bad("cursor", e)))
        .transpose()
}

/// The `nextCursor` of a page that ended at `next`, if more follow.
pub fn next_cursor<K: Serialize>(next: Option<K>, shape: &str) -> Option<String> {
    next.map(|k| cursor::encode_for(shape, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_from_1_to_100() {
        assert_eq!(limit(None).unwrap(), 100);
        assert_eq!(limit(Some("1")).unwrap(), 1);
        assert_eq!(limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "1.5", "7.0", "", "ten", "NaN", "1e400"] {
            let e = limit(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("limit"), "{bad}: {e}");
        }
    }

    #[test]
    fn cursors_round_trip_and_name_themselves_when_refused() {
        let c = next_cursor(Some(5_i64), "a").unwrap();
        assert_eq!(after::<i64>(Some(&c), "a").unwrap(), Some(5));
        assert_eq!(after::<i64>(None, "a").unwrap(), None);
        for raw in [c.as_str(), "garbage", "eyJ9"] {
            let e = after::<i64>(Some(raw), "b").unwrap_err().to_string();
            assert!(e.contains("cursor"), "{e}");
        }
        assert_eq!(next_cursor(None::<i64>, "a"), None);
        let pattern = regex::Regex::new(cursor::PATTERN).unwrap();
        for k in [0_i64, -1, i64::MAX] {
            let c = next_cursor(Some(k), "some route and filters").unwrap();
            assert!(pattern.is_match(&c), "{c}");
        }
    }
}

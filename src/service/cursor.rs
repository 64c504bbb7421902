//! Opaque keyset cursors, bound to the query that issued them.
//!
//! A cursor carries where the last page ended (a keyset) and a digest of
//! everything that defines the result set (route, connection, filters,
//! sort, list); reusing it elsewhere is refused instead of silently paging
//! through a different result set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::MediaQuery;
use crate::catalog::query::Keyset;

#[derive(Serialize, Deserialize)]
struct CursorBody<K> {
    q: String,
    k: K,
}

/// What every cursor looks like (unpadded base64url), for the document.
pub const PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// A digest of a result set's description.
fn digest(shape: &str) -> String {
    hex::encode(&Sha256::digest(shape.as_bytes())[..8])
}

/// A cursor for the result set described by `shape`, resuming after `k`.
pub fn encode_for<K: Serialize>(shape: &str, k: K) -> String {
    let body = CursorBody {
        q: digest(shape),
        k,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).expect("cursor serializes"))
}

/// Decodes a cursor issued for the result set described by `shape`, or
/// says what is wrong with it.
pub fn decode_for<K: DeserializeOwned>(raw: &str, shape: &str) -> Result<K, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| "cursor is malformed".to_string())?;
    // The binding first: a cursor of another route says so, rather than
    // that its keyset has another shape.
    let body: CursorBody<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| "cursor is malformed".to_string())?;
    if body.q != digest(shape) {
        return Err(
            "cursor was issued for a different query (route, connection, list, filters or sort changed)"
                .into(),
        );
    }
    serde_json::from_value(body.k).map_err(|_| "cursor is malformed".to_string())
}

/// A digest of everything that defines the result set: the connection and
/// the whole query but for the page size (which may change between pages)
/// and the keyset (which is the cursor itself). Derived from the whole
/// struct, not a list of its fields, so a filter added to [`MediaQuery`]
/// binds cursors without anyone remembering to add it here.
fn media_shape(connection: &str, q: &MediaQuery) -> String {
    let shape = MediaQuery {
        limit: 0,
        after: None,
        ..q.clone()
    };
    format!("{connection}|{shape:?}")
}

pub fn encode(connection: &str, q: &MediaQuery, k: Keyset) -> String {
    encode_for(&media_shape(connection, q), k)
}

/// Decodes a cursor for `q`, or says what is wrong with it.
pub fn decode(raw: &str, connection: &str, q: &MediaQuery) -> Result<Keyset, String> {
    let k: Keyset = decode_for(raw, &media_shape(connection, q))?;
    if k.sort_id.len() != 34 || !k.sort_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("cursor is malformed".into());
    }
    Ok(k)
}

/// What a cursor of `GET /v2/vault-plus/lists/{listId}/media` is bound to.
pub fn list_media_shape(connection: &str, list: &str) -> String {
    format!("lists/media|{connection}|{list}")
}

/// What a cursor of `GET /v2/vault-plus/jobs` is bound to.
pub fn jobs_shape(connection: &str, failed_only: bool) -> String {
    format!("jobs|{connection}|{failed_only}")
}

pub fn receipts_shape(connection: &str) -> String {
    format!("receipts|{connection}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SortValue;

    #[test]
    fn cursor_is_bound_to_its_query() {
        let q = MediaQuery::default();
        let k = Keyset {
            value: SortValue::Int(5),
            sort_id: "0".repeat(34),
        };
        let c = encode("conn_a", &q, k.clone());
        assert_eq!(decode(&c, "conn_a", &q).unwrap(), k);
        assert!(decode(&c, "conn_b", &q).is_err());
        let other = MediaQuery {
            duration_min: Some(1.0),
            ..MediaQuery::default()
        };
        assert!(
            decode(&c, "conn_a", &other)
                .unwrap_err()
                .contains("different query")
        );
        assert!(decode("100", "conn_a", &q).is_err());
        assert!(decode("!!", "conn_a", &q).is_err());
    }

    #[test]
    fn every_filter_binds_the_cursor_and_the_page_size_does_not() {
        let k = Keyset {
            value: SortValue::Int(5),
            sort_id: "0".repeat(34),
        };
        let q = MediaQuery {
            limit: 10,
            ..MediaQuery::default()
        };
        let c = encode("conn_a", &q, k.clone());
        let bigger_pages = MediaQuery {
            limit: 100,
            ..q.clone()
        };
        assert_eq!(decode(&c, "conn_a", &bigger_pages).unwrap(), k);
        let changes: [fn(&mut MediaQuery); 10] = [
            |q| q.status = Some(crate::model::VariantStatus::Stored),
            |q| q.media_type = Some(crate::model::MediaType::Video),
            |q| q.content_type = Some("image/png".into()),
            |q| q.duration_min = Some(1.0),
            |q| q.duration_max = Some(1.0),
            |q| q.created_from = Some(1),
            |q| q.created_to = Some(1),
            |q| q.cached_from = Some(1),
            |q| q.cached_to = Some(1),
            |q| q.sort = crate::catalog::SortKey::DurationAsc,
        ];
        for change in changes {
            let mut other = q.clone();
            change(&mut other);
            assert!(decode(&c, "conn_a", &other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn cursors_of_one_route_do_not_open_another() {
        let media = encode(
            "conn_a",
            &MediaQuery::default(),
            Keyset {
                value: SortValue::Int(5),
                sort_id: "0".repeat(34),
            },
        );
        let jobs = encode_for(&jobs_shape("conn_a", false), 7_i64);
        assert_eq!(
            decode_for::<i64>(&jobs, &jobs_shape("conn_a", false)),
            Ok(7)
        );
        for (raw, shape) in [
            (&media, jobs_shape("conn_a", false)),
            (&jobs, jobs_shape("conn_a", true)),
            (&jobs, jobs_shape("conn_b", false)),
            (&jobs, list_media_shape("conn_a", "1")),
        ] {
            assert!(
                decode_for::<i64>(raw, &shape)
                    .unwrap_err()
                    .contains("different query")
            );
        }
        let list = encode_for(&list_media_shape("conn_a", "1"), 1_i64);
        assert!(decode_for::<i64>(&list, &list_media_shape("conn_a", "2")).is_err());
        assert!(decode(&jobs, "conn_a", &MediaQuery::default()).is_err());
    }
}

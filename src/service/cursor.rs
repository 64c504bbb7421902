//! Opaque keyset cursors, bound to the query that issued them.
//!
//! A cursor carries where the last page ended (sort value and ID key) and a
//! digest of the filters and sort; reusing it with other filters is refused
//! instead of silently paging through a different result set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::MediaQuery;
use crate::catalog::query::Keyset;

#[derive(Serialize, Deserialize)]
struct CursorBody {
    q: String,
    k: Keyset,
}

/// A digest of everything that defines the result set: the connection, the
/// filters and the sort (not the page size, which may change between pages).
pub fn query_digest(connection: &str, q: &MediaQuery) -> String {
    let shape = format!(
        "{connection}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        q.status,
        q.media_type,
        q.content_type,
        q.duration_min,
        q.duration_max,
        q.created_from,
        q.created_to,
        q.cached_from,
        q.cached_to,
        q.sort
    );
    hex::encode(&Sha256::digest(shape.as_bytes())[..8])
}

pub fn encode(connection: &str, q: &MediaQuery, k: Keyset) -> String {
    let body = CursorBody {
        q: query_digest(connection, q),
        k,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).expect("cursor serializes"))
}

/// Decodes a cursor for `q`, or says what is wrong with it.
pub fn decode(raw: &str, connection: &str, q: &MediaQuery) -> Result<Keyset, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| "cursor is malformed".to_string())?;
    let body: CursorBody =
        serde_json::from_slice(&bytes).map_err(|_| "cursor is malformed".to_string())?;
    if body.q != query_digest(connection, q) {
        return Err(
            "cursor was issued for a different query (connection, filters or sort changed)".into(),
        );
    }
    if body.k.sort_id.len() != 34 || !body.k.sort_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("cursor is malformed".into());
    }
    Ok(body.k)
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
}

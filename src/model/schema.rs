//! JSON Schema fragments for the OpenAPI document, built at run time from
//! the constants the parsers check against. utoipa's attributes take only
//! literals (`pattern = "..."`, `maximum = 100`), which would be a second
//! declaration of each rule; these builders, used through
//! `schema_with = ...` and hand-written `PartialSchema` impls, read the
//! rule itself, so the document cannot drift from what the server enforces.

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};

/// A schema from its JSON form.
pub fn schema(v: Value) -> RefOr<Schema> {
    serde_json::from_value(v).expect("built schema is valid")
}

/// A string that is one of `values`.
pub fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// A whole number within `min..=max`.
pub fn whole(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// A number (fractions allowed) within `min..=max`.
pub fn number(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

/// A string of `min..=max` characters.
pub fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max})
}

/// An RFC 3339 instant (`2026-06-01T00:00:00.000Z`).
pub fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// The same schema, or `null` (a JSON field that may be given as null).
pub fn nullable(mut v: Value) -> Value {
    if let Some(values) = v.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    match v.get("type").cloned() {
        Some(Value::String(t)) => v["type"] = json!([t, "null"]),
        _ => return json!({"oneOf": [v, {"type": "null"}]}),
    }
    v
}

/// Adds a description.
pub fn described(mut v: Value, description: &str) -> Value {
    v["description"] = json!(description);
    v
}

/// A type that only carries a schema into the document, for the places
/// utoipa wants a type (`#[param(value_type = Option<Name>, inline)]`,
/// which, unlike `schema_with`, keeps the field's doc comment as the
/// parameter's description).
macro_rules! schema_type {
    ($(#[$doc:meta])* $vis:vis $name:ident => $schema:expr) => {
        $(#[$doc])*
        $vis struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                $crate::model::schema::schema($schema)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use schema_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_enums_take_null_as_a_value() {
        let v = nullable(one_of(&["a", "b"]));
        assert_eq!(v["type"], json!(["string", "null"]));
        assert_eq!(v["enum"], json!(["a", "b", null]));
        let v = nullable(whole(1, 2));
        assert_eq!(v["type"], json!(["integer", "null"]));
        assert!(v.get("enum").is_none());
    }
}

//! The one JSON parse every request body goes through. `serde_json::Value`
//! silently keeps the last of two equal keys, so
//! `{"vaultPlus":{"enabled":true},"vaultPlus":{"enabled":false}}` would
//! mean whatever the last writer wanted; a body that says two things is
//! refused instead, naming the key and where it is. A number serde_json
//! cannot hold (`1e400`) is refused the same way, with its path.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting accepted (serde_json's own recursion limit is 128; the
/// API's bodies are at most three levels deep).
const MAX_DEPTH: usize = 64;

/// Why a body was refused: the message, and the path of the value that is
/// wrong (`vaultPlus.settings.retentionDays`, `mediaIds[3]`; empty for the
/// body itself). Shown as `: message` or ` at path: message`, to follow
/// "malformed JSON body".
#[derive(Debug, PartialEq, Eq)]
pub struct JsonError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, " at {}: {}", self.path, self.message)
        }
    }
}

enum Step {
    Key(String),
    Index(usize),
}

/// Where the parse is: pushed on the way in, popped on success, so that on
/// an error it still holds the path to the failing value.
#[derive(Default)]
struct Trail(RefCell<Vec<Step>>);

impl Trail {
    fn render(&self) -> String {
        let mut out = String::new();
        for step in self.0.borrow().iter() {
            match step {
                Step::Key(k) if out.is_empty() => out.push_str(k),
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Parses a whole body into a [`Value`], refusing repeated keys at any
/// depth.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let trail = Trail::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = ValueSeed {
        trail: &trail,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| JsonError {
        path: trail.render(),
        message: e.to_string(),
    })
}

#[derive(Clone, Copy)]
struct ValueSeed<'t> {
    trail: &'t Trail,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Self {
            trail: self.trail,
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::new();
        loop {
            self.trail.0.borrow_mut().push(Step::Index(out.len()));
            match seq.next_element_seed(inner)? {
                Some(v) => out.push(v),
                None => {
                    // The index pushed for an element that is not there.
                    self.trail.0.borrow_mut().pop();
                    return Ok(Value::Array(out));
                }
            }
            self.trail.0.borrow_mut().pop();
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "key {key:?} is given more than once"
                )));
            }
            self.trail.0.borrow_mut().push(Step::Key(key.clone()));
            let value = map.next_value_seed(inner)?;
            self.trail.0.borrow_mut().pop();
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> JsonError {
        parse(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn parses_like_serde_json() {
        let body = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":18446744073709551615}"#;
        let ours = parse(body.as_bytes()).unwrap();
        let theirs: Value = serde_json::from_str(body).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn refuses_a_top_level_duplicate() {
        let e = err(r#"{"vaultPlus":{"enabled":true},"vaultPlus":{"enabled":false}}"#);
        assert_eq!(e.path, "");
        assert!(
            e.message.contains("\"vaultPlus\" is given more than once"),
            "{e}"
        );
    }

    #[test]
    fn refuses_a_nested_duplicate_with_its_path() {
        let e = err(r#"{"vaultPlus":{"settings":{"retentionDays":1,"retentionDays":2}}}"#);
        assert_eq!(e.path, "vaultPlus.settings");
        assert!(e.message.contains("\"retentionDays\""), "{e}");
        let e = err(r#"{"list":[{"a":1},{"a":1,"a":1}]}"#);
        assert_eq!(e.path, "list[1]");
    }

    #[test]
    fn same_key_in_sibling_objects_is_fine() {
        assert!(parse(br#"{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}"#).is_ok());
    }

    #[test]
    fn escaped_keys_are_compared_decoded() {
        let e = err(r#"{"ab":1,"a\u0062":2}"#);
        assert!(e.message.contains("\"ab\""), "{e}");
    }

    #[test]
    fn an_out_of_range_number_names_its_path() {
        let e = err(r#"{"vaultPlus":{"defaultSettings":{"storageLimitBytes":1e400}}}"#);
        assert_eq!(e.path, "vaultPlus.defaultSettings.storageLimitBytes");
        assert!(e.message.contains("out of range"), "{e}");
        let e = err(r#"{"ids":[1,2,-1e999]}"#);
        assert_eq!(e.path, "ids[2]");
    }

    #[test]
    fn refuses_trailing_garbage_and_deep_nesting() {
        assert!(parse(br#"{"a":1} {"a":2}"#).is_err());
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(err(&deep).message.contains("nested deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }
}

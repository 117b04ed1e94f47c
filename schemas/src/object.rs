//! Requests are JSON objects, and nothing else.
//!
//! serde's derived `Deserialize` for a struct also accepts a JSON array, filling the fields
//! in declaration order: `["hi","TEXT",null,"key"]` would be a send with an idempotency key.
//! The published schemas say objects, so every parse of outside input goes through
//! [`JsonObject`] (the top level) and [`optional_object`] (a nested struct field), which
//! ask the parser for a map and so refuse a sequence with serde's own "invalid type" error.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A `T` that was written as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = JsonObject<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
        // The map is handed to T's own deserializer, so its field rules (defaults, unknown
        // members refused, tags) apply unchanged; only the sequence form is gone.
        T::deserialize(MapAccessDeserializer::new(map)).map(JsonObject)
    }
}

/// Parses `text` as a `T` written as a JSON object.
pub fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    serde_json::from_str::<JsonObject<T>>(text).map(|JsonObject(value)| value)
}

/// For `#[serde(default, deserialize_with = "…")]` on an optional nested struct: `null` or
/// absent is `None`, an object is the struct, anything else is refused.
pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<JsonObject<T>>::deserialize(deserializer).map(|found| found.map(|JsonObject(t)| t))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        text: String,
        #[serde(default, deserialize_with = "optional_object")]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum Tagged {
        Ping { n: u32 },
    }

    #[test]
    fn objects_parse_as_before() {
        let outer: Outer = from_str(r#"{"text":"hi","inner":{"a":1}}"#).unwrap();
        assert_eq!(outer, Outer { text: "hi".into(), inner: Some(Inner { a: 1 }) });
        let without: Outer = from_str(r#"{"text":"hi","inner":null}"#).unwrap();
        assert_eq!(without.inner, None);
        let tagged: Tagged = from_str(r#"{"type":"ping","n":2}"#).unwrap();
        assert_eq!(tagged, Tagged::Ping { n: 2 });
    }

    #[test]
    fn arrays_are_refused_where_serde_would_take_them() {
        // What serde's derive accepts on its own, and this module refuses.
        assert!(serde_json::from_str::<Outer>(r#"["hi"]"#).is_ok());
        assert!(serde_json::from_str::<Tagged>(r#"["ping",2]"#).is_ok());

        let error = from_str::<Outer>(r#"["hi"]"#).unwrap_err();
        assert!(error.to_string().contains("expected a JSON object"), "{error}");
        assert!(from_str::<Tagged>(r#"["ping",2]"#).is_err());
        let nested = from_str::<Outer>(r#"{"text":"hi","inner":[1]}"#).unwrap_err();
        assert!(nested.to_string().contains("expected a JSON object"), "{nested}");
    }

    #[test]
    fn field_rules_still_apply_inside_the_object() {
        assert!(from_str::<Outer>(r#"{"text":"hi","extra":1}"#).is_err());
        assert!(from_str::<Outer>(r#"{"inner":{"a":1}}"#).is_err());
        assert!(from_str::<Outer>(r#""text""#).is_err());
        assert!(from_str::<Outer>("null").is_err());
    }
}

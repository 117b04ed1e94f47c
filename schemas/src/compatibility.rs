//! Whether a JSON Schema still describes what its published version promised.
//!
//! The published schemas are a contract with readers who never see this code (analytics
//! teams reading the log, the jobs system reading webhooks, browser clients): a record
//! valid under the published schema must stay readable, and a reader written against it
//! must still understand every new record. So, within one published document:
//!
//! - a property may be added only as optional; removing one, or making a required one
//!   optional, breaks readers that rely on it;
//! - no type, `const`, `format`, `pattern` or bound may change, in either direction (a
//!   wider one breaks readers' assumptions, a narrower one old records);
//! - an `enum` may gain values and a union (`oneOf`/`anyOf`, e.g. a tagged enum) may gain
//!   variants, never lose or change one: readers skip kinds they do not know.
//!
//! New meaning gets a new version or type, which is a new document.

use serde_json::{Map, Value};

/// Schemas nest far less deeply than this; a cycle of references stops here.
const MAX_DEPTH: usize = 64;

/// Every way `current` breaks what `published` promised, one line each, naming where (a
/// JSON pointer-like path into the instance) and what. Empty when compatible.
pub fn incompatibilities(published: &Value, current: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let pair = Pair { published_root: published, current_root: current };
    pair.compare(published, current, "", 0, &mut problems);
    problems
}

struct Pair<'a> {
    published_root: &'a Value,
    current_root: &'a Value,
}

/// A schema with its `$ref` followed (siblings of the reference kept over the target).
fn resolve(root: &Value, schema: &Value, depth: usize) -> Value {
    let Some(object) = schema.as_object() else { return schema.clone() };
    let Some(reference) = object.get("$ref").and_then(Value::as_str) else {
        return schema.clone();
    };
    let target = reference
        .strip_prefix('#')
        .and_then(|pointer| root.pointer(pointer))
        .cloned()
        .unwrap_or(Value::Null);
    let mut merged = if depth < MAX_DEPTH { resolve(root, &target, depth + 1) } else { target };
    if let Some(merged) = merged.as_object_mut() {
        for (key, value) in object {
            if key != "$ref" {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    merged
}

fn types(schema: &Map<String, Value>) -> Option<Vec<String>> {
    let mut names: Vec<String> = match schema.get("type")? {
        Value::String(name) => vec![name.clone()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => return None,
    };
    names.sort();
    Some(names)
}

fn required(schema: &Map<String, Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn variants(schema: &Map<String, Value>) -> Option<&Vec<Value>> {
    schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array)
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_owned(), Value::to_string)
}

impl Pair<'_> {
    fn compare(
        &self,
        published: &Value,
        current: &Value,
        at: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let published = resolve(self.published_root, published, 0);
        let current = resolve(self.current_root, current, 0);
        let place = if at.is_empty() { "/" } else { at };
        let (Some(old), Some(new)) = (published.as_object(), current.as_object()) else {
            if published != current {
                problems.push(format!("{place}: schema changed from {published} to {current}"));
            }
            return;
        };
        if types(old) != types(new) {
            problems.push(format!(
                "{place}: type changed from {} to {}",
                show(old.get("type")),
                show(new.get("type"))
            ));
        }
        for keyword in
            ["const", "format", "pattern", "minimum", "maximum", "minLength", "maxLength"]
        {
            if old.get(keyword) != new.get(keyword) {
                problems.push(format!(
                    "{place}: {keyword} changed from {} to {}",
                    show(old.get(keyword)),
                    show(new.get(keyword))
                ));
            }
        }
        if let Some(old_values) = old.get("enum").and_then(Value::as_array) {
            let new_values = new.get("enum").and_then(Value::as_array);
            for value in old_values {
                if !new_values.is_some_and(|values| values.contains(value)) {
                    problems.push(format!("{place}: enum value {value} removed"));
                }
            }
        }
        self.compare_properties(old, new, at, depth, problems);
        if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
            self.compare(old_items, new_items, &format!("{at}/*"), depth + 1, problems);
        }
        self.compare_variants(old, new, at, depth, problems);
    }

    fn compare_properties(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        at: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let empty = Map::new();
        let new_properties = new.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        if let Some(old_properties) = old.get("properties").and_then(Value::as_object) {
            for (name, old_schema) in old_properties {
                match new_properties.get(name) {
                    None => problems.push(format!("{at}/{name}: property removed")),
                    Some(new_schema) => self.compare(
                        old_schema,
                        new_schema,
                        &format!("{at}/{name}"),
                        depth + 1,
                        problems,
                    ),
                }
            }
        }
        let (old_required, new_required) = (required(old), required(new));
        for name in &new_required {
            if !old_required.contains(name) {
                problems.push(format!("{at}/{name}: new required property"));
            }
        }
        for name in &old_required {
            if !new_required.contains(name) && new_properties.contains_key(*name) {
                problems.push(format!("{at}/{name}: required property made optional"));
            }
        }
    }

    fn compare_variants(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        at: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let place = if at.is_empty() { "/" } else { at };
        match (variants(old), variants(new)) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                problems.push(format!("{place}: changed between one shape and a union of shapes"));
            }
            (Some(old_variants), Some(new_variants)) => {
                for (index, old_variant) in old_variants.iter().enumerate() {
                    let closest = new_variants
                        .iter()
                        .map(|new_variant| {
                            let mut found = Vec::new();
                            self.compare(old_variant, new_variant, at, depth + 1, &mut found);
                            found
                        })
                        .min_by_key(Vec::len)
                        .unwrap_or_else(|| vec![format!("{place}: every variant removed")]);
                    if !closest.is_empty() {
                        problems.push(format!(
                            "{place}: variant {index} removed or changed ({})",
                            closest.join("; ")
                        ));
                    }
                }
            }
        }
        if let (Some(old_all), Some(new_all)) = (old.get("allOf"), new.get("allOf"))
            && old_all != new_all
        {
            problems.push(format!("{place}: allOf changed"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(data: &Value) -> Value {
        json!({
            "type": "object",
            "required": ["type", "data"],
            "properties": { "type": { "const": "x.v1" }, "data": { "$ref": "#/$defs/Data" } },
            "$defs": { "Data": data }
        })
    }

    fn data() -> Value {
        json!({
            "type": "object",
            "required": ["id", "text"],
            "properties": {
                "id": { "type": "integer", "format": "uint64" },
                "text": { "type": "string" },
                "note": { "type": ["string", "null"] },
                "kind": { "enum": ["TEXT", "FILE"] }
            }
        })
    }

    fn with(change: impl FnOnce(&mut Value)) -> Value {
        let mut changed = data();
        change(&mut changed);
        event(&changed)
    }

    #[test]
    fn the_same_schema_and_a_new_optional_property_are_compatible() {
        assert!(incompatibilities(&event(&data()), &event(&data())).is_empty());
        let added = with(|d| d["properties"]["edited_at"] = json!({"type": "string"}));
        assert!(incompatibilities(&event(&data()), &added).is_empty());
    }

    #[test]
    fn a_removed_property_is_reported_by_its_path() {
        let removed = with(|d| {
            d["properties"].as_object_mut().unwrap().remove("note");
        });
        assert_eq!(incompatibilities(&event(&data()), &removed), ["/data/note: property removed"]);
    }

    #[test]
    fn a_changed_type_or_format_or_a_lost_enum_value_is_reported() {
        let typed = with(|d| d["properties"]["text"] = json!({"type": "integer"}));
        assert_eq!(
            incompatibilities(&event(&data()), &typed),
            ["/data/text: type changed from \"string\" to \"integer\""]
        );
        let nullable = with(|d| d["properties"]["text"] = json!({"type": ["string", "null"]}));
        assert_eq!(incompatibilities(&event(&data()), &nullable).len(), 1);
        let widened = with(|d| d["properties"]["kind"] = json!({"enum": ["TEXT", "FILE", "GIF"]}));
        assert!(incompatibilities(&event(&data()), &widened).is_empty(), "readers skip new values");
        let narrowed = with(|d| d["properties"]["kind"] = json!({"enum": ["TEXT"]}));
        assert_eq!(
            incompatibilities(&event(&data()), &narrowed),
            ["/data/kind: enum value \"FILE\" removed"]
        );
        let format = with(|d| d["properties"]["id"]["format"] = json!("uint32"));
        assert_eq!(incompatibilities(&event(&data()), &format).len(), 1);
    }

    #[test]
    fn a_new_required_property_or_a_requirement_dropped_is_reported() {
        let demanded = with(|d| {
            d["properties"]["edited_at"] = json!({"type": "string"});
            d["required"] = json!(["id", "text", "edited_at"]);
        });
        assert_eq!(
            incompatibilities(&event(&data()), &demanded),
            ["/data/edited_at: new required property"]
        );
        let relaxed = with(|d| d["required"] = json!(["id"]));
        assert_eq!(
            incompatibilities(&event(&data()), &relaxed),
            ["/data/text: required property made optional"]
        );
    }

    #[test]
    fn a_union_may_gain_variants_but_not_lose_or_change_one() {
        let variant = |kind: &str| {
            json!({"type": "object", "required": ["type"],
                   "properties": {"type": {"const": kind}}})
        };
        let union =
            |kinds: &[&str]| json!({"oneOf": kinds.iter().map(|k| variant(k)).collect::<Vec<_>>()});
        let published = union(&["typing", "presence"]);
        assert!(incompatibilities(&published, &union(&["presence", "typing", "edit"])).is_empty());
        let lost = incompatibilities(&published, &union(&["typing"]));
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].contains("variant 1"), "{lost:?}");
        let single = incompatibilities(&published, &variant("typing"));
        assert!(single.contains(&"/: changed between one shape and a union of shapes".to_owned()));
    }

    #[test]
    fn references_are_followed_in_each_document_and_cycles_end() {
        let inline = event(&data());
        let mut referenced = event(&json!({"$ref": "#/$defs/Inner"}));
        referenced["$defs"]["Inner"] = data();
        assert!(incompatibilities(&inline, &referenced).is_empty());
        let cycle = json!({"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/A"}}});
        assert!(incompatibilities(&cycle, &cycle).is_empty());
    }
}

//! Reading a JSON object field by field against the contract's rules. Every broken rule is
//! collected as a `Violation` instead of stopping at the first, so that whoever refuses the
//! input (the API's 422, `recloop import`'s line numbers) can say exactly which field broke
//! which rule, and where in a batch.

use serde_json::{Map, Value};

/// One broken rule, pointing at where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Position in a batch, when the input is an array.
    pub index: Option<usize>,
    /// The field that broke the rule; empty when the whole object did.
    pub field: String,
    /// What is wrong, in words a client is shown as they are.
    pub message: String,
}

impl Violation {
    pub fn new(index: Option<usize>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            index,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads the fields of one JSON object, collecting every broken rule instead of stopping at
/// the first, and refusing fields the contract does not know (a typo must not pass silently).
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    index: Option<usize>,
    pub violations: Vec<Violation>,
}

impl<'a> Fields<'a> {
    /// `None` (with the violation recorded in `violations`) when `value` is not an object.
    pub fn new(
        value: &'a Value,
        index: Option<usize>,
        known: &[&str],
        violations: &mut Vec<Violation>,
    ) -> Option<Self> {
        let Some(object) = value.as_object() else {
            violations.push(Violation::new(index, "", "must be a JSON object"));
            return None;
        };
        let mut fields = Self {
            object,
            index,
            violations: Vec::new(),
        };
        for key in object.keys() {
            if !known.contains(&key.as_str()) {
                fields.fail(
                    key,
                    format!("unknown field; expected one of: {}", known.join(", ")),
                );
            }
        }
        Some(fields)
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.violations
            .push(Violation::new(self.index, field, message.into()));
    }

    /// An optional string; `null` counts as absent.
    pub fn opt_str(&mut self, field: &str) -> Option<&'a str> {
        match self.object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    pub fn req_str(&mut self, field: &str) -> Option<&'a str> {
        if matches!(self.object.get(field), None | Some(Value::Null)) {
            self.fail(field, "is required");
            return None;
        }
        self.opt_str(field)
    }

    /// Parses a field with `parse`, recording its error message against the field.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(raw?) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(field, e.to_string());
                None
            }
        }
    }

    pub fn opt_bool(&mut self, field: &str) -> Option<bool> {
        match self.object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.fail(field, "must be true or false");
                None
            }
        }
    }

    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field).filter(|v| !v.is_null())
    }

    /// Moves this object's violations into the batch's list; true when there were none.
    pub fn finish(self, violations: &mut Vec<Violation>) -> bool {
        let ok = self.violations.is_empty();
        violations.extend(self.violations);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_broken_rule_of_an_object() {
        let mut all = Vec::new();
        let value = json!({"a": 1, "b": "x", "c": "y", "typo": true});
        let mut f = Fields::new(&value, Some(3), &["a", "b", "c", "d"], &mut all).unwrap();
        assert_eq!(f.opt_str("a"), None);
        assert_eq!(f.req_str("d"), None);
        assert_eq!(f.parsed("b", Some("x"), str::parse::<u8>), None);
        assert_eq!(f.opt_str("c"), Some("y"));
        assert!(!f.finish(&mut all));
        let fields: Vec<(Option<usize>, &str)> =
            all.iter().map(|v| (v.index, v.field.as_str())).collect();
        assert_eq!(
            fields,
            [
                (Some(3), "typo"),
                (Some(3), "a"),
                (Some(3), "d"),
                (Some(3), "b")
            ]
        );
        assert_eq!(all[1].message, "must be a string");
        assert_eq!(all[2].message, "is required");
    }

    #[test]
    fn a_value_that_is_not_an_object_is_one_violation() {
        let mut all = Vec::new();
        assert!(Fields::new(&json!("x"), None, &[], &mut all).is_none());
        assert_eq!(all, [Violation::new(None, "", "must be a JSON object")]);
    }
}

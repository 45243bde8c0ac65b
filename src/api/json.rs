//! The JSON body extractor: every rejected body still gets the contract's envelope
//! (415 not JSON, 413 too large, 400 malformed), and handlers get a `serde_json::Value`
//! they check field by field so that a 422 can say exactly which field broke which rule.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
};
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorDetail};

pub struct JsonBody(pub Value);

fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || (mime.len() > 17
            && mime[..12].eq_ignore_ascii_case("application/")
            && mime.to_ascii_lowercase().ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(content_type) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson(format!("could not read the body: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::MalformedJson(format!("malformed JSON: {e}")))
    }
}

/// Reads the fields of one JSON object, collecting every broken rule instead of stopping at
/// the first, and refusing fields the contract does not know (a typo must not pass silently).
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    index: Option<usize>,
    pub errors: Vec<ErrorDetail>,
}

impl<'a> Fields<'a> {
    /// `None` (with the error recorded in `errors`) when `value` is not an object.
    pub fn new(
        value: &'a Value,
        index: Option<usize>,
        known: &[&str],
        errors: &mut Vec<ErrorDetail>,
    ) -> Option<Self> {
        let Some(object) = value.as_object() else {
            errors.push(ErrorDetail::new(index, "", "must be a JSON object"));
            return None;
        };
        let mut fields = Self {
            object,
            index,
            errors: Vec::new(),
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
        self.errors
            .push(ErrorDetail::new(self.index, field, message.into()));
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

    /// Moves this object's errors into the batch's list.
    pub fn finish(self, errors: &mut Vec<ErrorDetail>) -> bool {
        let ok = self.errors.is_empty();
        errors.extend(self.errors);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}

//! Artifact path templates such as `iris/{run_id}/{model_id}/model.joblib`,
//! and the checks that keep a parameter value from reaching outside the
//! store's base path or prefix.

use regex::Regex;

use crate::params::Params;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("path template '{0}' must be relative, without '..', '.' or empty segments")]
    NotRelative(String),
    #[error("path template '{template}' has a malformed parameter in segment '{segment}'")]
    BadSegment { template: String, segment: String },
    #[error("path template '{template}' uses parameter '{name}' twice")]
    Duplicate { template: String, name: String },
    #[error("path template parameters {template:?} must match the endpoint's path parameters {path:?} by name")]
    Mismatch { template: Vec<String>, path: Vec<String> },
}

/// Why a parameter value was refused (a 422, before any file is touched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path parameter '{name}' = {value:?} {reason}")]
pub struct InvalidParam {
    pub name: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct PathTemplate {
    raw: String,
    segments: Vec<Vec<Part>>,
    params: Vec<String>,
    matcher: Regex,
}

impl PathTemplate {
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let not_relative = || TemplateError::NotRelative(raw.to_string());
        if raw.is_empty() || raw.starts_with('/') || raw.contains('\\') {
            return Err(not_relative());
        }
        let mut segments = Vec::new();
        let mut params: Vec<String> = Vec::new();
        let mut pattern = String::from("^");
        for (i, segment) in raw.split('/').enumerate() {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(not_relative());
            }
            if i > 0 {
                pattern.push('/');
            }
            let bad = || TemplateError::BadSegment { template: raw.to_string(), segment: segment.to_string() };
            let mut parts = Vec::new();
            let mut rest = segment;
            while !rest.is_empty() {
                match rest.find('{') {
                    Some(0) => {
                        let end = rest.find('}').ok_or_else(bad)?;
                        let name = &rest[1..end];
                        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if !valid {
                            return Err(bad());
                        }
                        if params.iter().any(|p| p == name) {
                            return Err(TemplateError::Duplicate { template: raw.to_string(), name: name.to_string() });
                        }
                        params.push(name.to_string());
                        pattern.push_str(&format!("(?P<{name}>[^/]+?)"));
                        parts.push(Part::Param(name.to_string()));
                        rest = &rest[end + 1..];
                    }
                    found => {
                        let end = found.unwrap_or(rest.len());
                        let literal = &rest[..end];
                        if literal.contains('}') {
                            return Err(bad());
                        }
                        pattern.push_str(&regex::escape(literal));
                        parts.push(Part::Literal(literal.to_string()));
                        rest = &rest[end..];
                    }
                }
            }
            segments.push(parts);
        }
        pattern.push('$');
        let matcher = Regex::new(&pattern).map_err(|_| TemplateError::NotRelative(raw.to_string()))?;
        Ok(PathTemplate { raw: raw.to_string(), segments, params, matcher })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// The template's parameters must be exactly the endpoint's, in any order.
    pub fn check_params(&self, path_params: &[String]) -> Result<(), TemplateError> {
        let mut a = self.params.clone();
        let mut b = path_params.to_vec();
        a.sort();
        b.sort();
        if a != b {
            return Err(TemplateError::Mismatch { template: self.params.clone(), path: path_params.to_vec() });
        }
        Ok(())
    }

    /// The artifact key for these parameter values. Values are checked
    /// first, so the key never leaves the store's base.
    pub fn render(&self, params: &Params) -> Result<String, InvalidParam> {
        let mut out = String::with_capacity(self.raw.len() + 16);
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            for part in segment {
                match part {
                    Part::Literal(s) => out.push_str(s),
                    Part::Param(name) => {
                        let value = params.get(name).unwrap_or_default();
                        check_value(name, value)?;
                        out.push_str(value);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The part of every key before its first parameter (for listing).
    pub fn literal_prefix(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            for part in segment {
                match part {
                    Part::Literal(s) => out.push_str(s),
                    Part::Param(_) => return out,
                }
            }
            out.push('/');
        }
        out
    }

    /// The parameter values of a key that fits the template, in path order
    /// of `order`; `None` for keys that do not fit or hold unsafe values.
    pub fn parse_key(&self, key: &str, order: &[String]) -> Option<Params> {
        let captures = self.matcher.captures(key)?;
        let mut pairs = Vec::with_capacity(order.len());
        for name in order {
            let value = captures.name(name)?.as_str();
            check_value(name, value).ok()?;
            pairs.push((name.clone(), value.to_string()));
        }
        Some(Params::new(pairs))
    }
}

/// A parameter value may only be a plain file-name token: no separators,
/// no `.`/`..`, no escapes or control characters.
pub fn check_value(name: &str, value: &str) -> Result<(), InvalidParam> {
    let invalid = |reason: &str| InvalidParam { name: name.into(), value: value.into(), reason: reason.into() };
    if value.is_empty() {
        return Err(invalid("is empty"));
    }
    if value == "." || value == ".." {
        return Err(invalid("is a relative path"));
    }
    if value.len() > 255 {
        return Err(invalid("is longer than 255 bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '=' | '+' | '~' | '@');
    if !value.chars().all(allowed) {
        return Err(invalid("may only hold letters, digits and _ - . = + ~ @"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn renders_and_parses_keys() {
        let t = PathTemplate::parse("iris/{run_id}/model-{model_id}.joblib").unwrap();
        assert_eq!(t.params(), ["run_id", "model_id"]);
        let p = params(&[("model_id", "2"), ("run_id", "1")]);
        assert_eq!(t.render(&p).unwrap(), "iris/1/model-2.joblib");
        assert_eq!(t.literal_prefix(), "iris/");
        let order = vec!["run_id".to_string(), "model_id".to_string()];
        assert_eq!(t.parse_key("iris/1/model-2.joblib", &order), Some(params(&[("run_id", "1"), ("model_id", "2")])));
        assert_eq!(t.parse_key("iris/1/other.joblib", &order), None);
        assert_eq!(t.parse_key("iris/a/b/model-2.joblib", &order), None);
        assert!(t.check_params(&["model_id".into(), "run_id".into()]).is_ok());
        assert!(t.check_params(&["run_id".into()]).is_err());
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in ["/abs/{x}", "a/../{x}", "a//{x}", "a/{x", "a/{x-y}", "a/{x}/{x}", "a\\{x}", ""] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_traversal_values() {
        let t = PathTemplate::parse("m/{id}/model.bin").unwrap();
        for bad in ["..", ".", "", "a/b", "a\\b", "a\0b", "%2e%2e", "/etc", "a b", "ü"] {
            let err = t.render(&params(&[("id", bad)])).unwrap_err();
            assert_eq!(err.name, "id", "{bad}");
        }
        assert_eq!(t.render(&params(&[("id", "v1.2-rc_3")])).unwrap(), "m/v1.2-rc_3/model.bin");
    }
}

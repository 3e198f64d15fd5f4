//! `'module:function'` references to Python callables.

use std::fmt;

use redesmyn_python_abi::status;

use crate::bridge::Object;
use crate::interpreter::{started, PythonError};

/// A `module:attribute` reference, like `iris_handlers:predict` or
/// `joblib:load`. The attribute may be dotted (`module:Class.method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub module: String,
    pub attribute: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, PythonError> {
        let bad = || PythonError::BadTarget(text.to_string());
        let (module, attribute) = text.split_once(':').ok_or_else(bad)?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    !part.is_empty()
                        && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                        && !part.starts_with(|c: char| c.is_ascii_digit())
                })
        };
        if !valid(module) || !valid(attribute) {
            return Err(bad());
        }
        Ok(Target { module: module.into(), attribute: attribute.into() })
    }

    /// Imports the module and looks the attribute up; the error names
    /// whichever part is missing.
    pub(crate) fn resolve(&self) -> Result<Object, PythonError> {
        let bridge = started()?;
        bridge.resolve(&self.module, &self.attribute).map_err(|failure| match failure.code {
            status::IMPORT => PythonError::Import { module: self.module.clone(), error: failure.message },
            status::MISSING_ATTRIBUTE => {
                PythonError::MissingAttribute { module: self.module.clone(), attribute: self.attribute.clone() }
            }
            status::NOT_CALLABLE => PythonError::NotCallable(self.to_string()),
            _ => PythonError::Config(failure.message),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.attribute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_and_attribute() {
        let t = Target::parse("pkg.mod:Class.method").unwrap();
        assert_eq!((t.module.as_str(), t.attribute.as_str()), ("pkg.mod", "Class.method"));
        for bad in ["nocolon", ":f", "m:", "m:1f", "a..b:f", "m:f-g"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}

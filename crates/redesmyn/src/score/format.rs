//! File formats a scoring run reads and writes, chosen by extension unless
//! the caller names one.

use std::path::Path;

use super::ScoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    NdJson,
    /// Arrow IPC file format (Feather v2).
    Ipc,
}

impl Format {
    /// `csv`, `parquet`, `ndjson` (or `jsonl`), `arrow` (or `ipc`, `feather`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "ndjson" | "jsonl" => Some(Format::NdJson),
            "arrow" | "ipc" | "feather" => Some(Format::Ipc),
            _ => None,
        }
    }

    /// The format named by `given`, else the one `path`'s extension names.
    pub fn resolve(given: Option<&str>, path: &Path) -> Result<Self, ScoreError> {
        if let Some(name) = given {
            return Format::parse(name).ok_or_else(|| ScoreError::Format(format!("unknown file format '{name}'")));
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        Format::parse(ext).ok_or_else(|| {
            ScoreError::Format(format!(
                "cannot tell the format of '{}' from its extension; name one (csv, parquet, ndjson, arrow)",
                path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension_unless_named() {
        assert_eq!(Format::resolve(None, Path::new("a/b.PARQUET")).unwrap(), Format::Parquet);
        assert_eq!(Format::resolve(None, Path::new("b.jsonl")).unwrap(), Format::NdJson);
        assert_eq!(Format::resolve(Some("csv"), Path::new("b.txt")).unwrap(), Format::Csv);
        assert!(Format::resolve(None, Path::new("b.txt")).is_err());
    }
}

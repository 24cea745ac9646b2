//! `results.json`: the machine-readable report.
//!
//! Owns the JSON encoding of [`RunReport`] and the version check on the way
//! back in. Field names are the serde names in the model; `format_version`
//! comes first so readers can dispatch on it.

use std::{error::Error, fmt};

use serde::Deserialize;

use crate::{FORMAT_VERSION, RunReport};

/// A `results.json` could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// The text is not JSON of the expected shape.
    Json(serde_json::Error),
    /// The report was written with a format version this crate cannot read.
    Version {
        /// The version found in the file.
        found: u32,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(_) => f.write_str("invalid run report"),
            Self::Version { found } => write!(
                f,
                "run report format version {found} is not supported (expected {FORMAT_VERSION})"
            ),
        }
    }
}

impl Error for ParseError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            Self::Version { .. } => None,
        }
    }
}

/// Pretty-printed JSON with a trailing newline.
#[must_use]
pub fn render(report: &RunReport) -> String {
    match serde_json::to_string_pretty(report) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // The model has only string keys, so this cannot happen; if it
        // ever does, still write a file that says what went wrong.
        Err(err) => format!(
            "{{\n  \"format_version\": {FORMAT_VERSION},\n  \"error\": {}\n}}\n",
            serde_json::Value::String(format!("report could not be serialized: {err}"))
        ),
    }
}

/// Reads a `results.json`, rejecting other format versions before looking
/// at any other field.
pub fn parse(input: &str) -> Result<RunReport, ParseError> {
    #[derive(Deserialize)]
    struct Versioned {
        format_version: u32,
    }
    let Versioned { format_version } = serde_json::from_str(input).map_err(ParseError::Json)?;
    if format_version != FORMAT_VERSION {
        return Err(ParseError::Version {
            found: format_version,
        });
    }
    serde_json::from_str(input).map_err(ParseError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_contains_all, sample};

    #[test]
    fn round_trip_and_spelling() {
        let report = sample();
        let text = render(&report);
        assert!(text.starts_with("{\n  \"format_version\": 1,"));
        assert!(text.ends_with("}\n"));
        assert_contains_all(
            &text,
            &[
                r#""level": "MUST""#,
                r#""level": "SHOULD""#,
                r#""verdict": "non-strict""#,
                r#""verdict": "error""#,
                r#""seed": 42"#,
            ],
        );
        assert_eq!(parse(&text).unwrap(), report);
    }

    #[test]
    fn other_versions_are_rejected() {
        let err = parse(r#"{"format_version": 2, "whatever": true}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "run report format version 2 is not supported (expected 1)"
        );
        assert!(matches!(parse("not json"), Err(ParseError::Json(_))));
    }
}

//! Parsers for `KEY=VALUE` flag values shared by `topic` and `bench`, usable as clap `value_parser`s.
//!
//! They return `String` errors so clap prints them verbatim after the flag name.

use std::collections::HashSet;

/// Parses `KEY=VALUE`. The key must be non-empty and free of whitespace; the value is
/// everything after the first `=` and may be empty or contain `=`.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got `{s}`"));
    };
    if key.is_empty() {
        return Err(format!("empty key in `{s}`"));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(format!("whitespace in key `{key}`"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Fails on the first key given twice; `what` names the flag in the message.
pub(crate) fn reject_duplicate_keys<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    for key in keys {
        if !seen.insert(key) {
            anyhow::bail!("{what} `{key}` given more than once");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn key_value_splits_at_first_equals() {
        assert_eq!(
            parse_key_value("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("a="), Ok(("a".into(), String::new())));
    }

    #[test]
    fn key_value_rejects_malformed_input() {
        assert_eq!(
            parse_key_value("retention.ms"),
            Err("expected KEY=VALUE, got `retention.ms`".into())
        );
        assert_eq!(parse_key_value("=1"), Err("empty key in `=1`".into()));
        assert_eq!(
            parse_key_value("a b=1"),
            Err("whitespace in key `a b`".into())
        );
        assert!(parse_key_value("").is_err());
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(reject_duplicate_keys(["a", "b"], "--config").is_ok());
        let e = reject_duplicate_keys(["a", "b", "a"], "--config").unwrap_err();
        assert_eq!(e.to_string(), "--config `a` given more than once");
    }
}

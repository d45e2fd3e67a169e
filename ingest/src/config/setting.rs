//! The machinery behind [`settings!`](crate::config): one declaration per setting, from which
//! the [`NodeConfig`](super::NodeConfig) field and its default, the `tierlog serve` flag, the
//! `TIERLOG_*` environment variable, the TOML key and the [`Setting`] description all follow.
//!
//! A setting named `lease_ttl` is the field `lease_ttl`, the TOML key `lease_ttl`, the flag
//! `--lease-ttl` and the variable `TIERLOG_LEASE_TTL`; the names are derived at compile time
//! ([`flag_bytes`], [`env_bytes`]) so there is no second spelling to get wrong. How a value is
//! written — on the command line, in the environment, in the file — is its type's
//! [`SettingValue`] implementation: durations as humantime (`50ms`, `7days`), sizes as bytes,
//! booleans as `true`/`false` (a bare boolean flag means `true`), enums by their kebab-case name.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{ValueParser, ValueRange};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FlushMode, NodeConfig, ReplicaSelector};

/// One setting of [`NodeConfig`], as the flag parser, the documentation and the tests see it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The field of [`NodeConfig`] and the key of the TOML file, e.g. `lease_ttl`.
    pub key: &'static str,
    /// The flag of `tierlog serve` without its dashes, e.g. `lease-ttl`.
    pub flag: &'static str,
    /// The environment variable, e.g. `TIERLOG_LEASE_TTL`.
    pub env: &'static str,
    /// What the setting does and its trade-off, one line per doc-comment line.
    pub doc: &'static [&'static str],
    /// The setting's value in a config, written as the flag takes it (`None`: unset).
    pub(super) render: fn(&NodeConfig) -> Option<String>,
}

impl Setting {
    /// The setting named `key` (as in the TOML file), if there is one.
    pub fn by_key(key: &str) -> Option<&'static Setting> {
        super::SETTINGS.iter().find(|s| s.key == key)
    }

    /// This setting's value in `config`, written the way its flag and variable take it
    /// (`None` for an optional setting left unset).
    pub fn value(&self, config: &NodeConfig) -> Option<String> {
        (self.render)(config)
    }

    /// This setting's default, written as its flag takes it.
    pub fn default_value(&self) -> Option<String> {
        self.value(&NodeConfig::default())
    }

    /// The help line of the flag: the doc comment, then the default when there is one to show.
    pub(super) fn help(doc: &[&str], default: Option<String>) -> String {
        let text = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        match default {
            Some(d) => format!("{text} [default: {d}]"),
            None => text,
        }
    }
}

/// How a setting's type is read from a flag or variable, written back, and kept in TOML.
pub trait SettingValue: Sized {
    /// What the flag parses to: the type itself, or `T` for an optional `Option<T>`.
    type Flag: Clone + Send + Sync + 'static;
    /// The parser of flag and environment values.
    fn value_parser() -> ValueParser;
    /// How many values the flag takes: one, or none-or-one for booleans (`--s3-path-style`).
    fn num_args() -> ValueRange {
        ValueRange::SINGLE
    }
    /// The value of a flag given without one (booleans: `true`).
    fn bare_flag() -> Option<&'static str> {
        None
    }
    /// The setting's value from a parsed flag.
    fn from_flag(flag: Self::Flag) -> Self;
    /// The value written as the flag takes it; `None` for an unset optional.
    fn to_flag(&self) -> Option<String>;
    /// The value as a TOML file holds it.
    fn write_toml<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    /// The value from a TOML file.
    fn read_toml<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Types whose flag syntax is their `FromStr`/`Display` and whose TOML form is their serde form.
macro_rules! plain_setting_value {
    ($($ty:ty => $parser:expr, $to_flag:expr;)*) => {$(
        impl SettingValue for $ty {
            type Flag = $ty;
            fn value_parser() -> ValueParser {
                $parser
            }
            fn from_flag(flag: $ty) -> Self {
                flag
            }
            fn to_flag(&self) -> Option<String> {
                let to_flag: fn(&$ty) -> String = $to_flag;
                Some(to_flag(self))
            }
            fn write_toml<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                Serialize::serialize(self, s)
            }
            fn read_toml<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$ty as Deserialize>::deserialize(d)
            }
        }
    )*};
}

plain_setting_value! {
    String => ValueParser::string(), |v| v.clone();
    PathBuf => ValueParser::path_buf(), |v| v.display().to_string();
    i16 => clap::value_parser!(i16).into(), |v| v.to_string();
    i32 => clap::value_parser!(i32).into(), |v| v.to_string();
    u64 => clap::value_parser!(u64).into(), |v| v.to_string();
    usize => clap::value_parser!(usize).into(), |v| v.to_string();
    FlushMode => clap::value_parser!(FlushMode).into(), value_name;
    ReplicaSelector => clap::value_parser!(ReplicaSelector).into(), value_name;
}

/// An enum setting's value as its flag takes it: its kebab-case name.
fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

impl SettingValue for bool {
    type Flag = bool;
    fn value_parser() -> ValueParser {
        ValueParser::bool()
    }
    fn num_args() -> ValueRange {
        (0..=1).into()
    }
    fn bare_flag() -> Option<&'static str> {
        Some("true")
    }
    fn from_flag(flag: bool) -> Self {
        flag
    }
    fn to_flag(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn write_toml<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*self)
    }
    fn read_toml<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <bool as Deserialize>::deserialize(d)
    }
}

/// Durations are written the human way everywhere: `50ms`, `30s`, `7days`.
impl SettingValue for Duration {
    type Flag = Duration;
    fn value_parser() -> ValueParser {
        ValueParser::new(parse_duration)
    }
    fn from_flag(flag: Duration) -> Self {
        flag
    }
    fn to_flag(&self) -> Option<String> {
        Some(humantime::format_duration(*self).to_string())
    }
    fn write_toml<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*self).to_string())
    }
    fn read_toml<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// An optional setting: the flag gives the value, leaving it out leaves it unset.
impl<T> SettingValue for Option<T>
where
    T: SettingValue<Flag = T> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Flag = T;
    fn value_parser() -> ValueParser {
        T::value_parser()
    }
    fn from_flag(flag: T) -> Self {
        Some(flag)
    }
    fn to_flag(&self) -> Option<String> {
        self.as_ref().and_then(T::to_flag)
    }
    fn write_toml<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Serialize::serialize(self, s)
    }
    fn read_toml<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Option<T> as Deserialize>::deserialize(d)
    }
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 50ms or 30s: {e}"))
}

/// serde `with` module for every [`NodeConfig`] field: defers to [`SettingValue`].
pub(super) mod serde_setting {
    use super::SettingValue;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<T: SettingValue, S: Serializer>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.write_toml(s)
    }

    pub(crate) fn deserialize<'de, T: SettingValue, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        T::read_toml(d)
    }
}

/// `TIERLOG_` followed by `key` in upper case, as bytes of length `N` (= 8 + `key.len()`).
pub(super) const fn env_bytes<const N: usize>(key: &str) -> [u8; N] {
    const PREFIX: &[u8] = b"TIERLOG_";
    let key = key.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < PREFIX.len() {
        out[i] = PREFIX[i];
        i += 1;
    }
    let mut j = 0;
    while j < key.len() {
        out[i + j] = key[j].to_ascii_uppercase();
        j += 1;
    }
    out
}

/// `key` with `_` replaced by `-`, as bytes of length `N` (= `key.len()`).
pub(super) const fn flag_bytes<const N: usize>(key: &str) -> [u8; N] {
    let key = key.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < key.len() {
        out[i] = if key[i] == b'_' { b'-' } else { key[i] };
        i += 1;
    }
    out
}

/// The bytes built by [`env_bytes`] or [`flag_bytes`] as a string (they are ASCII).
pub(super) const fn ascii(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("setting names are ASCII"),
    }
}

/// The flag of setting `$key` (`lease_ttl` → `lease-ttl`), a `&'static str` built at compile
/// time.
macro_rules! flag_of {
    ($key:ident) => {{
        const KEY: &str = stringify!($key);
        const BYTES: [u8; KEY.len()] = $crate::config::setting::flag_bytes(KEY);
        const NAME: &str = $crate::config::setting::ascii(&BYTES);
        NAME
    }};
}

/// The environment variable of setting `$key` (`lease_ttl` → `TIERLOG_LEASE_TTL`).
macro_rules! env_of {
    ($key:ident) => {{
        const KEY: &str = stringify!($key);
        const BYTES: [u8; KEY.len() + 8] = $crate::config::setting::env_bytes(KEY);
        const NAME: &str = $crate::config::setting::ascii(&BYTES);
        NAME
    }};
}

/// Declares every setting once — doc comment, name, type, default — and generates
/// [`NodeConfig`] with its `Default`, `ServeArgs` (the flags and variables), the step that lays
/// flags over a config, and [`SETTINGS`](super::SETTINGS).
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty = $default:expr;
    )*) => {
        /// Everything `tierlog serve` needs. Plain data, declared setting by setting in
        /// `config.rs`; `ingest/README.md` documents each one's trade-off.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct NodeConfig {
            $(
                $(#[doc = $doc])*
                #[serde(with = "setting::serde_setting")]
                pub $key: $ty,
            )*
        }

        impl Default for NodeConfig {
            fn default() -> Self {
                NodeConfig { $( $key: $default, )* }
            }
        }

        /// Flag and environment overrides of [`NodeConfig`]; every one optional so that only
        /// what was given replaces the file's value. Each setting's flag is its name in kebab
        /// case and its variable `TIERLOG_` and its name in upper case.
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct ServeArgs {
            /// TOML config file.
            #[arg(long, env = "TIERLOG_CONFIG")]
            pub config: Option<PathBuf>,
            $(
                #[arg(
                    long = flag_of!($key),
                    env = env_of!($key),
                    value_parser = <$ty as SettingValue>::value_parser(),
                    num_args = <$ty as SettingValue>::num_args(),
                    default_missing_value = <$ty as SettingValue>::bare_flag(),
                    help = Setting::help(&[$($doc),*], SettingValue::to_flag(&{ let d: $ty = $default; d })),
                )]
                pub $key: Option<<$ty as SettingValue>::Flag>,
            )*
        }

        impl ServeArgs {
            /// Lays the given flags (and variables) over `config`.
            fn apply_to(&self, config: &mut NodeConfig) {
                $(
                    if let Some(v) = &self.$key {
                        config.$key = <$ty as SettingValue>::from_flag(v.clone());
                    }
                )*
            }
        }

        #[cfg(test)]
        impl NodeConfig {
            /// A config in which every setting differs from its default (round-trip tests).
            fn all_changed() -> NodeConfig {
                let d = NodeConfig::default();
                NodeConfig { $( $key: tests::Changed::changed(&d.$key), )* }
            }
        }

        /// Every setting, in declaration order.
        pub const SETTINGS: &[Setting] = &[
            $(
                Setting {
                    key: stringify!($key),
                    flag: flag_of!($key),
                    env: env_of!($key),
                    doc: &[$($doc),*],
                    render: |c| SettingValue::to_flag(&c.$key),
                },
            )*
        ];
    };
}

pub(super) use {env_of, flag_of, settings};

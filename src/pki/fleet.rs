//! Device ids: a template such as `device-{n:05}` turned into the id of device number n.

use std::fmt;

/// A parsed device-id template. `{n}` is the device number (from 1); `{n:05}` pads it with
/// zeros to 5 digits. Everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTemplate {
    prefix: String,
    width: usize,
    suffix: String,
    source: String,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTemplateError {
    /// No `{n}` placeholder: every device would have the same id.
    #[error("template {0:?} has no {{n}} placeholder, so every device would get the same id")]
    NoPlaceholder(String),
    /// A placeholder other than `{n}` or `{n:0W}`.
    #[error("template {template:?} has placeholder {placeholder:?}; only {{n}} and {{n:0W}} (W digits, zero-padded) are known")]
    UnknownPlaceholder {
        /// The template.
        template: String,
        /// The placeholder found.
        placeholder: String,
    },
    /// Characters IoT Hub does not allow in a device id.
    #[error("template {template:?} contains {ch:?}, which a device id cannot hold (allowed: letters, digits and - . % _ * ? ! ( ) , : = @ $ ')")]
    BadCharacter {
        /// The template.
        template: String,
        /// The offending character.
        ch: char,
    },
}

impl IdTemplate {
    /// Parses a template.
    pub fn parse(template: &str) -> Result<Self, IdTemplateError> {
        let open = template
            .find('{')
            .ok_or_else(|| IdTemplateError::NoPlaceholder(template.to_owned()))?;
        let close = template[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| IdTemplateError::NoPlaceholder(template.to_owned()))?;
        let placeholder = &template[open + 1..close];
        let width = match placeholder {
            "n" => 0,
            p => p
                .strip_prefix("n:0")
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=20).contains(w))
                .ok_or_else(|| IdTemplateError::UnknownPlaceholder {
                    template: template.to_owned(),
                    placeholder: format!("{{{p}}}"),
                })?,
        };
        let prefix = &template[..open];
        let suffix = &template[close + 1..];
        if let Some(ch) = prefix
            .chars()
            .chain(suffix.chars())
            .find(|c| !is_device_id_char(*c))
        {
            return Err(IdTemplateError::BadCharacter {
                template: template.to_owned(),
                ch,
            });
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            width,
            suffix: suffix.to_owned(),
            source: template.to_owned(),
        })
    }

    /// The id of device number `n`.
    pub fn id(&self, n: u64) -> String {
        format!(
            "{}{:0width$}{}",
            self.prefix,
            n,
            self.suffix,
            width = self.width
        )
    }
}

impl fmt::Display for IdTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// IoT Hub's device-id alphabet: ASCII alphanumerics and `- . % _ * ? ! ( ) , : = @ $ '`.
pub fn is_device_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.%_*?!(),:=@$'".contains(c)
}

/// The ids of a fleet or of one shard of it: device numbers `first`, `first + step`, ...,
/// `len` of them. Arithmetic, not a list: a fleet of millions costs nothing until its ids are
/// asked for.
#[derive(Debug, Clone)]
pub struct DeviceIds {
    template: IdTemplate,
    first: u64,
    step: u64,
    len: usize,
}

impl DeviceIds {
    /// Device numbers `1..=devices` that fall to `shard` of `shards` (round-robin, so every
    /// shard's share of a ramp is spread over the whole fleet).
    pub fn new(template: IdTemplate, devices: u64, shard: u64, shards: u64) -> Self {
        let shards = shards.max(1);
        let len = if shard < devices {
            (devices - shard - 1) / shards + 1
        } else {
            0
        };
        Self {
            template,
            first: shard + 1,
            step: shards,
            len: usize::try_from(len).unwrap_or(usize::MAX),
        }
    }

    /// How many devices.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of the `i`-th device of this set.
    pub fn id(&self, i: usize) -> String {
        self.template.id(self.first + i as u64 * self.step)
    }

    /// Every id, in order.
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.len).map(|i| self.id(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_and_plain_templates() {
        assert_eq!(
            IdTemplate::parse("device-{n:05}").unwrap().id(7),
            "device-00007"
        );
        assert_eq!(IdTemplate::parse("d{n}x").unwrap().id(12), "d12x");
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(matches!(
            IdTemplate::parse("device"),
            Err(IdTemplateError::NoPlaceholder(_))
        ));
        assert!(matches!(
            IdTemplate::parse("device-{id}"),
            Err(IdTemplateError::UnknownPlaceholder { .. })
        ));
        assert!(matches!(
            IdTemplate::parse("dev ice-{n}"),
            Err(IdTemplateError::BadCharacter { ch: ' ', .. })
        ));
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_fleet() {
        let t = IdTemplate::parse("d{n}").unwrap();
        let mut all: Vec<String> = (0..4)
            .flat_map(|k| {
                DeviceIds::new(t.clone(), 10, k, 4)
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort();
        let mut expected: Vec<String> = (1..=10).map(|n| format!("d{n}")).collect();
        expected.sort();
        assert_eq!(all, expected);
    }

    #[test]
    fn shard_sizes_add_up_even_when_shards_outnumber_devices() {
        let t = IdTemplate::parse("d{n}").unwrap();
        let lens: Vec<usize> = (0..4)
            .map(|k| DeviceIds::new(t.clone(), 3, k, 4).len())
            .collect();
        assert_eq!(lens, [1, 1, 1, 0]);
        let big = DeviceIds::new(t, 10_000_000, 2, 3);
        assert_eq!(big.len(), 3_333_333);
        assert_eq!(big.id(0), "d3");
        assert_eq!(big.id(big.len() - 1), "d9999999");
    }
}

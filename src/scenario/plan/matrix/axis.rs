//! The axes of `[matrix]`: which scenario key each sets, its values parsed and checked, a
//! cell's settings resolved against the base scenario, and the combinations that cannot work.

use std::fmt;

use crate::pki::KeyType;
use crate::scenario::{MatrixCellSection, MatrixSection, Scenario};
use crate::transport::{Provider, TlsVersion};

/// A scenario key a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Axis {
    /// `fleet.key-type`.
    KeyType,
    /// `fleet.ca-key-type`.
    CaKeyType,
    /// `tls.groups` (one group per cell).
    Group,
    /// `tls.provider`.
    Provider,
    /// `tls.hub-provider`.
    HubProvider,
    /// `tls.version`.
    Version,
    /// `tls.resumption`.
    Resumption,
    /// `fleet.intermediates` (chain depth).
    Intermediates,
}

impl Axis {
    /// Every axis, in the order of cell labels and comparison columns.
    pub const ALL: [Self; 8] = [
        Self::KeyType,
        Self::CaKeyType,
        Self::Group,
        Self::Provider,
        Self::HubProvider,
        Self::Version,
        Self::Resumption,
        Self::Intermediates,
    ];

    /// Its key in `[matrix]`.
    pub const fn key(self) -> &'static str {
        match self {
            Self::KeyType => "key-type",
            Self::CaKeyType => "ca-key-type",
            Self::Group => "group",
            Self::Provider => "provider",
            Self::HubProvider => "hub-provider",
            Self::Version => "version",
            Self::Resumption => "resumption",
            Self::Intermediates => "intermediates",
        }
    }
}

/// One value of an axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Key(KeyType),
    /// Group names (canonical spelling); empty: the provider's defaults.
    Groups(Vec<String>),
    Provider(Provider),
    Version(TlsVersion),
    Flag(bool),
    Depth(u8),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(k) => f.write_str(k.name()),
            Self::Groups(g) if g.is_empty() => f.write_str("default"),
            Self::Groups(g) => f.write_str(&g.join("+")),
            Self::Provider(p) => f.write_str(p.name()),
            Self::Version(v) => write!(f, "{v}"),
            Self::Flag(b) => f.write_str(if *b { "on" } else { "off" }),
            Self::Depth(d) => write!(f, "{d}"),
        }
    }
}

/// A value as a part of a cell's label, e.g. `tls1.3`, `no-resume`, `depth2`.
pub(super) fn label_part(axis: Axis, v: &Value) -> String {
    match (axis, v) {
        (Axis::CaKeyType, v) => format!("ca-{v}"),
        (Axis::HubProvider, v) => format!("hub-{v}"),
        (Axis::Version, v) => format!("tls{v}"),
        (Axis::Resumption, Value::Flag(true)) => "resume".into(),
        (Axis::Resumption, _) => "no-resume".into(),
        (Axis::Intermediates, v) => format!("depth{v}"),
        (_, v) => v.to_string(),
    }
}

/// The canonical spelling of a group name (`p-256` is `secp256r1`), if any provider has it.
pub(super) fn canonical_group(name: &str) -> Option<&'static str> {
    // aws-lc-rs has every group ring has, and the post-quantum ones.
    let all = Provider::AwsLcRs;
    let id = all.group(name)?.name();
    all.group_names()
        .into_iter()
        .find(|n| all.group(n).map(|g| g.name()) == Some(id))
}

/// Parses one value of `axis` from its TOML form.
pub(super) fn parse(axis: Axis, raw: &RawValue<'_>) -> Result<Value, String> {
    let text = |r: &RawValue<'_>| match r {
        RawValue::Text(t) => Ok((*t).to_owned()),
        _ => Err(format!("{} takes strings", axis.key())),
    };
    match axis {
        Axis::KeyType | Axis::CaKeyType => text(raw)?.parse().map(Value::Key),
        Axis::Group => {
            let t = text(raw)?;
            canonical_group(&t)
                .map(|g| Value::Groups(vec![g.to_owned()]))
                .ok_or_else(|| {
                    format!(
                        "{t:?} is not a key-exchange group; known: {}",
                        Provider::AwsLcRs.group_names().join(", ")
                    )
                })
        }
        Axis::Provider | Axis::HubProvider => {
            let t = text(raw)?;
            Provider::ALL
                .into_iter()
                .find(|p| p.name() == t)
                .map(Value::Provider)
                .ok_or_else(|| format!("{t:?} is not a crypto provider: \"ring\" or \"aws-lc-rs\""))
        }
        Axis::Version => match text(raw)?.as_str() {
            "1.2" => Ok(Value::Version(TlsVersion::Tls12)),
            "1.3" => Ok(Value::Version(TlsVersion::Tls13)),
            t => Err(format!("{t:?} is not a TLS version: \"1.2\" or \"1.3\"")),
        },
        Axis::Resumption => match raw {
            RawValue::Flag(b) => Ok(Value::Flag(*b)),
            _ => Err("resumption takes true or false".into()),
        },
        Axis::Intermediates => match raw {
            RawValue::Depth(d) if *d <= 8 => Ok(Value::Depth(*d)),
            RawValue::Depth(d) => Err(format!("{d} is not valid: at most 8 intermediates")),
            _ => Err("intermediates takes numbers".into()),
        },
    }
}

/// A value as the scenario file holds it.
#[derive(Debug, Clone, Copy)]
pub(super) enum RawValue<'a> {
    Text(&'a str),
    Flag(bool),
    Depth(u8),
}

/// The values listed for each axis in `[matrix]`, in file order.
pub(super) fn listed(m: &MatrixSection) -> Vec<(Axis, Vec<RawValue<'_>>)> {
    fn text(v: &Option<Vec<String>>) -> Option<Vec<RawValue<'_>>> {
        v.as_ref()
            .map(|v| v.iter().map(|s| RawValue::Text(s)).collect())
    }
    let lists = [
        (Axis::KeyType, text(&m.key_type)),
        (Axis::CaKeyType, text(&m.ca_key_type)),
        (Axis::Group, text(&m.group)),
        (Axis::Provider, text(&m.provider)),
        (Axis::HubProvider, text(&m.hub_provider)),
        (Axis::Version, text(&m.version)),
        (
            Axis::Resumption,
            m.resumption
                .as_ref()
                .map(|v| v.iter().map(|b| RawValue::Flag(*b)).collect()),
        ),
        (
            Axis::Intermediates,
            m.intermediates
                .as_ref()
                .map(|v| v.iter().map(|d| RawValue::Depth(*d)).collect()),
        ),
    ];
    lists
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| (a, v)))
        .collect()
}

/// The values an `include` or `exclude` entry states.
pub(super) fn stated(c: &MatrixCellSection) -> Vec<(Axis, RawValue<'_>)> {
    fn text(v: &Option<String>) -> Option<RawValue<'_>> {
        v.as_deref().map(RawValue::Text)
    }
    [
        (Axis::KeyType, text(&c.key_type)),
        (Axis::CaKeyType, text(&c.ca_key_type)),
        (Axis::Group, text(&c.group)),
        (Axis::Provider, text(&c.provider)),
        (Axis::HubProvider, text(&c.hub_provider)),
        (Axis::Version, text(&c.version)),
        (Axis::Resumption, c.resumption.map(RawValue::Flag)),
        (Axis::Intermediates, c.intermediates.map(RawValue::Depth)),
    ]
    .into_iter()
    .filter_map(|(a, v)| v.map(|v| (a, v)))
    .collect()
}

/// What a cell runs with: the base scenario's settings with the cell's values applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    key_type: KeyType,
    ca_key_type: KeyType,
    groups: Vec<String>,
    provider: Provider,
    /// `None`: the devices' provider.
    hub_provider: Option<Provider>,
    version: TlsVersion,
    resumption: bool,
    intermediates: u8,
    /// The groups the hub offers (empty: every group of its provider); not an axis.
    hub_groups: Vec<String>,
}

impl Settings {
    /// The base scenario's settings, defaults filled in as `Plan` fills them.
    pub(super) fn base(s: &Scenario) -> Self {
        let key = |k: &Option<String>| {
            k.as_deref()
                .and_then(|k| k.parse().ok())
                .unwrap_or_default()
        };
        let groups = |g: &Option<Vec<String>>| {
            g.iter()
                .flatten()
                .map(|n| canonical_group(n).map_or_else(|| n.clone(), str::to_owned))
                .collect()
        };
        Self {
            key_type: key(&s.fleet.key_type),
            ca_key_type: key(&s.fleet.ca_key_type),
            groups: groups(&s.tls.groups),
            provider: s.tls.provider.unwrap_or_default(),
            hub_provider: s.tls.hub_provider,
            version: s.tls.version.unwrap_or_default(),
            resumption: s.tls.resumption.unwrap_or(false),
            // As `fleet::fleet` defaults it.
            intermediates: s.fleet.intermediates.unwrap_or(1),
            hub_groups: groups(&s.tls.hub_groups),
        }
    }

    /// These settings with `v` for `axis`.
    pub(super) fn set(&mut self, axis: Axis, v: &Value) {
        match (axis, v) {
            (Axis::KeyType, Value::Key(k)) => self.key_type = *k,
            (Axis::CaKeyType, Value::Key(k)) => self.ca_key_type = *k,
            (Axis::Group, Value::Groups(g)) => self.groups.clone_from(g),
            (Axis::Provider, Value::Provider(p)) => self.provider = *p,
            (Axis::HubProvider, Value::Provider(p)) => self.hub_provider = Some(*p),
            (Axis::Version, Value::Version(t)) => self.version = *t,
            (Axis::Resumption, Value::Flag(b)) => self.resumption = *b,
            (Axis::Intermediates, Value::Depth(d)) => self.intermediates = *d,
            // `parse` makes each axis's own kind of value only.
            _ => {}
        }
    }

    /// The value of `axis` in these settings.
    pub(super) fn get(&self, axis: Axis) -> Value {
        match axis {
            Axis::KeyType => Value::Key(self.key_type),
            Axis::CaKeyType => Value::Key(self.ca_key_type),
            Axis::Group => Value::Groups(self.groups.clone()),
            Axis::Provider => Value::Provider(self.provider),
            Axis::HubProvider => Value::Provider(self.hub()),
            Axis::Version => Value::Version(self.version),
            Axis::Resumption => Value::Flag(self.resumption),
            Axis::Intermediates => Value::Depth(self.intermediates),
        }
    }

    fn hub(&self) -> Provider {
        self.hub_provider.unwrap_or(self.provider)
    }

    /// The base scenario with these settings, for validating as a plan of its own.
    pub(super) fn apply(&self, base: &Scenario) -> Scenario {
        let mut s = base.clone();
        s.matrix = None;
        s.fleet.key_type = Some(self.key_type.name().into());
        // A CA directory's keys fix the CA key type: set only when the base or a cell did.
        if s.fleet.ca_dir.is_none() {
            s.fleet.ca_key_type = Some(self.ca_key_type.name().into());
        }
        s.tls.groups = (!self.groups.is_empty()).then(|| self.groups.clone());
        s.tls.provider = Some(self.provider);
        s.tls.hub_provider = self.hub_provider;
        s.tls.version = Some(self.version);
        s.tls.resumption = Some(self.resumption);
        s.fleet.intermediates = Some(self.intermediates);
        s
    }

    /// Why these settings cannot complete a handshake, if they cannot.
    pub(super) fn unworkable(&self) -> Option<String> {
        let (hub, version) = (self.hub(), self.version);
        for g in &self.groups {
            for (who, p) in [
                ("the devices' provider", self.provider),
                ("the hub's provider", hub),
            ] {
                if p.group(g).is_none() {
                    return Some(format!("{who} {p} has no key-exchange group {g}"));
                }
            }
            if let Some(kx) = self.provider.group(g) {
                if !kx.usable_for_version(version.rustls()) {
                    return Some(format!(
                        "{g} is a TLS 1.3 group, not usable with TLS {version}"
                    ));
                }
            }
            if !self.hub_groups.is_empty() && !self.hub_groups.contains(g) {
                return Some(format!(
                    "the hub offers only {} (tls.hub-groups), not {g}",
                    self.hub_groups.join(", ")
                ));
            }
        }
        for (whose, k) in [("device", self.key_type), ("CA", self.ca_key_type)] {
            if !k.is_post_quantum() {
                continue;
            }
            if self.provider != Provider::AwsLcRs || (whose == "device" && hub != Provider::AwsLcRs)
            {
                return Some(format!(
                    "{k} {whose} certificates need aws-lc-rs on both sides (ring has no ML-DSA)"
                ));
            }
            if version != TlsVersion::Tls13 {
                return Some(format!(
                    "{k} {whose} certificates are TLS 1.3 only, not TLS {version}"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_aliases_are_one_group() {
        assert_eq!(canonical_group("p-256"), Some("secp256r1"));
        assert_eq!(canonical_group("x25519mlkem768"), Some("X25519MLKEM768"));
        assert_eq!(canonical_group("ffdhe2048"), None);
    }

    #[test]
    fn unworkable_combinations_say_why() {
        let mut s = Settings::base(&Scenario::default());
        assert_eq!(s.unworkable(), None);
        s.set(Axis::Group, &Value::Groups(vec!["X25519MLKEM768".into()]));
        assert!(s
            .unworkable()
            .unwrap()
            .contains("ring has no key-exchange group X25519MLKEM768"));
        s.set(Axis::Provider, &Value::Provider(Provider::AwsLcRs));
        assert_eq!(s.unworkable(), None);
        s.set(Axis::Version, &Value::Version(TlsVersion::Tls12));
        assert!(s.unworkable().unwrap().contains("TLS 1.3 group"));
        s.set(Axis::Group, &Value::Groups(vec!["x25519".into()]));
        s.set(Axis::KeyType, &Value::Key(KeyType::MlDsa44));
        assert!(s.unworkable().unwrap().contains("TLS 1.3 only"));
        s.set(Axis::HubProvider, &Value::Provider(Provider::Ring));
        assert!(s.unworkable().unwrap().contains("aws-lc-rs on both sides"));
    }
}

//! What IoT Hub accepts as a device id and as a CA certificate's name, and what it accepts as
//! a CA certificate.

use crate::pki::is_device_id_char;

/// Longest device id IoT Hub accepts.
pub const MAX_DEVICE_ID: usize = 128;

/// Longest CA certificate name IoT Hub accepts.
pub const MAX_CA_NAME: usize = 64;

/// A name IoT Hub refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A device id.
    #[error(
        "device id {id:?} is not valid: {reason} (IoT Hub: 1 to {MAX_DEVICE_ID} ASCII letters, \
         digits and - . % _ * ? ! ( ) , : = @ $ ')"
    )]
    DeviceId {
        /// The id as given.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A CA certificate name.
    #[error(
        "CA name {name:?} is not valid: {reason} (IoT Hub: 1 to {MAX_CA_NAME} ASCII letters, \
         digits, '-', '.' and '_')"
    )]
    CaName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Checks a device id against IoT Hub's rules.
pub fn check_device_id(id: &str) -> Result<(), NameError> {
    let bad = |reason: String| NameError::DeviceId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if id.len() > MAX_DEVICE_ID {
        return Err(bad(format!("it is {} characters long", id.chars().count())));
    }
    match id.chars().find(|c| !is_device_id_char(*c)) {
        Some(c) => Err(bad(format!("{c:?} is not allowed"))),
        None => Ok(()),
    }
}

/// Checks a CA certificate's name against IoT Hub's rules.
pub fn check_ca_name(name: &str) -> Result<(), NameError> {
    let bad = |reason: String| NameError::CaName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if name.len() > MAX_CA_NAME {
        return Err(bad(format!(
            "it is {} characters long",
            name.chars().count()
        )));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c)))
    {
        Some(c) => Err(bad(format!("{c:?} is not allowed"))),
        None => Ok(()),
    }
}

/// Refuses a certificate that is not a CA certificate (basicConstraints CA:TRUE), as IoT Hub
/// refuses an end-entity certificate uploaded as a CA.
pub fn check_is_ca(cert: &[u8]) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("it does not parse as X.509 ({e})"))?;
    match parsed.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Ok(()),
        Ok(_) => Err(
            "it is not a CA certificate (no basicConstraints CA:TRUE): an end-entity \
             certificate cannot sign devices; upload the root or intermediate CA"
                .into(),
        ),
        Err(e) => Err(format!("its basicConstraints do not parse ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_follow_iot_hub() {
        for ok in ["device-00001", "a", "x.y_z:1@2$'", &"d".repeat(128)] {
            assert_eq!(check_device_id(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a b", "a\0b", "../x", "a/b", "é", &"d".repeat(129)] {
            assert!(check_device_id(bad).is_err(), "{bad:?}");
        }
        for ok in ["tutorial", "my-ca.v2_1"] {
            assert_eq!(check_ca_name(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a b", "a/b", &"c".repeat(65)] {
            assert!(check_ca_name(bad).is_err(), "{bad:?}");
        }
    }
}

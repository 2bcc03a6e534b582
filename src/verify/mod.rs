//! Verifying receivers: fleetbench's own receiving sessions that read every message the devices
//! send, so that delivery (not only acknowledgement) is proven. Receivers turn each delivery into
//! a [`Received`] and send it to the accounting.
//!
//! `verify` sits beside `load`: `command -> verify -> protocol -> transport -> pki`; it never
//! imports `hub`, and `load` never imports it.

pub mod amqp;
pub mod eventhubs;

/// One message as a verifying receiver got it, before it is matched to what was sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// The sending device, when the transport says (IoT Hub's `iothub-connection-device-id`
    /// annotation, an MQTT topic level); otherwise taken from the stamp.
    pub device: Option<String>,
    /// The message id (AMQP message-id; IoT Hub `$.mid`), when there is one.
    pub message_id: Option<String>,
    /// Application properties (AMQP application-properties; MQTT 5 user properties), as strings.
    pub properties: Vec<(String, String)>,
    /// The body bytes.
    pub body: bytes::Bytes,
    /// When the receiver got it.
    pub at: std::time::Instant,
}

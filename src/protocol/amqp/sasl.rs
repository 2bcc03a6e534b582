//! SASL EXTERNAL and ANONYMOUS over a TLS stream that fe2o3-amqp did not build itself.
//!
//! fe2o3's builder refuses EXTERNAL with a caller-supplied stream, and its EXTERNAL profile sends
//! no initial response, which RabbitMQ 3.10 rejects (`unexpected_1_0_sasl_frame`): the SASL
//! layer is run here with fe2o3's public transport, sending an empty initial response (RFC 4422:
//! "derive the authorization identity from the credentials", i.e. the certificate). ANONYMOUS
//! runs here too so that a broker which does not offer it is named with what it does offer
//! (fe2o3 reports that as "Not implemented").

use fe2o3_amqp::frames::sasl;
use fe2o3_amqp::transport::protocol_header::ProtocolHeaderCodec;
use fe2o3_amqp::transport::Transport;
use fe2o3_amqp::types::primitives::{Binary, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::SessionError;
use crate::transport::Replay;

/// The mechanisms run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    /// EXTERNAL, with an empty initial response.
    External,
    /// ANONYMOUS, with no initial response (as fe2o3's own profile).
    Anonymous,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Self::External => "EXTERNAL",
            Self::Anonymous => "ANONYMOUS",
        }
    }

    fn initial_response(self) -> Option<Binary> {
        match self {
            Self::External => Some(Binary::from(Vec::new())),
            Self::Anonymous => None,
        }
    }
}

fn negotiation(e: impl std::fmt::Display) -> SessionError {
    SessionError::Protocol(format!("SASL negotiation failed: {e}"))
}

/// Runs the SASL header exchange and `mechanism`; returns the stream, replaying whatever the peer
/// pipelined after its outcome, ready for the AMQP header.
pub(super) async fn negotiate<S>(
    stream: S,
    host: &str,
    mechanism: Mechanism,
) -> Result<Replay<S>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (r, w) = tokio::io::split(stream);
    let fw = FramedWrite::new(w, ProtocolHeaderCodec::new());
    let fr = FramedRead::new(r, ProtocolHeaderCodec::new());
    let mut transport = Transport::<_, sasl::Frame>::negotiate_sasl_header(fw, fr)
        .await
        .map_err(negotiation)?;
    match transport.next().await {
        Some(Ok(sasl::Frame::Mechanisms(m))) => {
            let offered: Vec<&str> = m
                .sasl_server_mechanisms
                .0
                .iter()
                .map(|s| s.as_str())
                .collect();
            if !offered.contains(&mechanism.name()) {
                return Err(SessionError::Refused(format!(
                    "the broker refused SASL mechanism {}: it offers only {}",
                    mechanism.name(),
                    if offered.is_empty() {
                        "none".to_owned()
                    } else {
                        offered.join(", ")
                    }
                )));
            }
        }
        Some(Ok(other)) => {
            return Err(negotiation(format!(
                "expected sasl-mechanisms, got {other:?}"
            )))
        }
        Some(Err(e)) => return Err(negotiation(e)),
        None => return Err(SessionError::Closed),
    }
    let init = SaslInit {
        mechanism: Symbol::from(mechanism.name()),
        initial_response: mechanism.initial_response(),
        hostname: Some(host.to_owned()),
    };
    transport
        .send(sasl::Frame::Init(init))
        .await
        .map_err(negotiation)?;
    match transport.next().await {
        Some(Ok(sasl::Frame::Outcome(o))) if o.code == SaslCode::Ok => {}
        Some(Ok(sasl::Frame::Outcome(o))) => {
            return Err(SessionError::Refused(format!(
                "SASL {} outcome {:?}",
                mechanism.name(),
                o.code
            )))
        }
        Some(Ok(other)) => {
            return Err(negotiation(format!("expected sasl-outcome, got {other:?}")))
        }
        Some(Err(e)) => return Err(negotiation(e)),
        None => return Err(SessionError::Closed),
    }
    let (fw, fr) = transport.into_framed_codec();
    let leftover = fr.read_buffer().to_vec();
    Ok(Replay::new(
        leftover,
        fr.into_inner().unsplit(fw.into_inner()),
    ))
}

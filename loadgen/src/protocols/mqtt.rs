//! MQTT 3.1.1 over WebSocket (subprotocol `mqtt`; Mosquitto's `websockets`
//! listener, RabbitMQ's Web-MQTT): `CONNECT` (a clean session, the session's
//! keepalive), `CONNACK`, one `SUBSCRIBE` for every channel (the topic is
//! the channel's name, QoS 0), `SUBACK`: open. Events arrive as `PUBLISH`;
//! the client's keepalive is `PINGREQ`, answered `PINGRESP`.
//!
//! Control packets are a byte stream: a frame may hold several, and one
//! may end in the next frame (`read` says how far it got).

use super::{Broken, Greet, Hello, Msg, Outbox};
use rtbench_protocol::frame;

pub const SUBPROTOCOL: &str = "mqtt";
pub const PINGREQ: &[u8] = &[0xC0, 0x00];

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const SUBACK: u8 = 9;
const PINGRESP: u8 = 13;

/// A control packet: its type, flags, body, and its length on the wire.
type Packet<'a> = (u8, u8, &'a [u8], usize);

/// One packet at the start of `buf`; None when it is not whole yet.
fn packet(buf: &[u8]) -> Result<Option<Packet<'_>>, Broken> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // The remaining length: 1 to 4 bytes, 7 bits each.
    let mut len = 0usize;
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * (at - 1));
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at == 5 {
            return Err(Broken);
        }
    }
    if len > super::MAX_CARRY {
        return Err(Broken);
    }
    if buf.len() < at + len {
        return Ok(None);
    }
    Ok(Some((
        first >> 4,
        first & 0x0f,
        &buf[at..at + len],
        at + len,
    )))
}

/// A packet as a `Msg`.
fn message(kind: u8, flags: u8, body: &[u8]) -> Result<Msg<'_>, Broken> {
    Ok(match kind {
        PUBLISH => {
            let n = usize::from(u16::from_be_bytes([
                *body.first().ok_or(Broken)?,
                *body.get(1).ok_or(Broken)?,
            ]));
            let topic = body.get(2..2 + n).ok_or(Broken)?;
            // QoS 1 and 2 carry a packet id; this client subscribes at 0.
            let id = if flags & 0x06 != 0 { 2 } else { 0 };
            Msg::Event {
                channel: std::str::from_utf8(topic).map_err(|_| Broken)?,
                body: body.get(2 + n + id..).ok_or(Broken)?,
            }
        }
        PINGRESP => Msg::Pong,
        _ => Msg::Other,
    })
}

/// Every whole packet of `buf`; returns how many bytes they were.
pub fn read(buf: &[u8], on: &mut impl FnMut(Msg<'_>)) -> Result<usize, Broken> {
    let mut at = 0;
    while let Some((kind, flags, body, n)) = packet(&buf[at..])? {
        on(message(kind, flags, body)?);
        at += n;
    }
    Ok(at)
}

/// The handshake. Stage 0: `CONNECT` sent (`Greeting::upgraded`), waiting
/// for `CONNACK`; 1: `SUBSCRIBE` sent, waiting for `SUBACK`.
pub fn greet(stage: &mut u8, hello: &Hello, payload: &[u8], out: &mut Outbox) -> Greet {
    let mut at = 0;
    loop {
        let (kind, flags, body, n) = match packet(&payload[at..]) {
            Ok(Some(p)) => p,
            Ok(None) => return Greet::Wait,
            Err(Broken) => return Greet::Failed("protocol_error".into()),
        };
        match (*stage, kind) {
            (0, CONNACK) => {
                match body.get(1) {
                    Some(0) => {}
                    Some(rc) => return Greet::Failed(format!("mqtt_connack_{rc}")),
                    None => return Greet::Failed("protocol_error".into()),
                }
                if hello.channels.is_empty() {
                    return Greet::Open { rest: at + n };
                }
                out.send(frame::OP_BINARY, &subscribe(&hello.channels));
                *stage = 1;
            }
            (1, SUBACK) => {
                // Packet id, then a return code per topic (0x80: refused).
                if body.len() != 2 + hello.channels.len() || body[2..].contains(&0x80) {
                    return Greet::Failed("mqtt_suback_refused".into());
                }
                return Greet::Open { rest: at + n };
            }
            (1, PUBLISH) if message(kind, flags, body).is_ok() => return Greet::Open { rest: at },
            _ => {}
        }
        at += n;
    }
}

/// A packet: its first byte, the remaining length, the rest.
fn packet_of(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        out.push(if len > 0 { b | 0x80 } else { b });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `CONNECT`: MQTT 3.1.1, a clean session, the keepalive in seconds.
pub fn connect(hello: &Hello) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0x02); // clean session
    let keepalive = hello.keepalive_s.ceil().min(f64::from(u16::MAX)) as u16;
    body.extend_from_slice(&keepalive.to_be_bytes());
    string(&mut body, &hello.client_id);
    packet_of(CONNECT << 4, &body)
}

/// One `SUBSCRIBE` (packet id 1) for every channel, at QoS 0.
fn subscribe(channels: &[String]) -> Vec<u8> {
    let mut body = vec![0, 1];
    for c in channels {
        string(&mut body, c);
        body.push(0);
    }
    packet_of(0x82, &body)
}

/// `PUBLISH` at QoS 0.
pub fn publish(channel: &str, body: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + channel.len() + body.len());
    string(&mut b, channel);
    b.extend_from_slice(body.as_bytes());
    packet_of(PUBLISH << 4, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_read_across_frames_and_carried_when_cut() {
        let publish = publish("room.7", &"x".repeat(200));
        assert_eq!(&publish[..3], &[0x30, 208, 1], "a two-byte length");
        let stream = [&publish[..], &[0xD0, 0x00], &publish[..]].concat();
        let mut seen = Vec::new();
        assert_eq!(
            read(&stream, &mut |m| seen.push(format!("{m:?}"))),
            Ok(stream.len())
        );
        assert_eq!(seen.len(), 3);
        assert!(seen[0].contains("channel: \"room.7\"") && seen[1] == "Pong");
        let mut n = 0;
        assert_eq!(
            read(&stream[..publish.len() + 3], &mut |_| n += 1),
            Ok(publish.len() + 2)
        );
        assert_eq!(n, 2);
        assert_eq!(
            read(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], &mut |_| {}),
            Err(Broken)
        );
    }

    #[test]
    fn the_handshake_connects_subscribes_and_opens_on_suback() {
        let hello = Hello {
            channels: vec!["a".into(), "b".into()],
            client_id: "c9".into(),
            keepalive_s: 20.0,
        };
        let c = connect(&hello);
        assert_eq!(
            c,
            [
                0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 20, 0, 2, b'c', b'9'
            ]
        );
        let (mut wire, mut mask, mut stage) = (Vec::new(), 7u32, 0u8);
        let mut out = Outbox {
            wire: &mut wire,
            mask: &mut mask,
        };
        assert_eq!(
            greet(&mut stage, &hello, &[0x20, 2, 0, 5], &mut out),
            Greet::Failed("mqtt_connack_5".into())
        );
        assert_eq!(
            greet(&mut stage, &hello, &[0x20, 2, 0, 0], &mut out),
            Greet::Wait
        );
        assert_eq!(stage, 1);
        assert_eq!(
            greet(&mut stage, &hello, &[0x90, 4, 0, 1, 0, 0x80], &mut out),
            Greet::Failed("mqtt_suback_refused".into())
        );
        assert_eq!(
            greet(
                &mut stage,
                &hello,
                &[0x90, 4, 0, 1, 0, 0, 0xD0, 0],
                &mut out
            ),
            Greet::Open { rest: 6 }
        );
    }
}

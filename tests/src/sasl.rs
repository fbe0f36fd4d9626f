//! A SASL front for the test broker: a Kafka-protocol proxy that answers
//! `SaslHandshake` and `SaslAuthenticate` itself (PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512, the server side of RFC 5802 and RFC 7677) and relays
//! every other request to the broker once the client has authenticated.
//!
//! Why not the broker's own SASL: Tansu checks SCRAM credentials, but its
//! users live in its storage, and with the in-memory storage the tests use
//! a user can only be created by an authenticated client — there is no
//! first user. The client side (librdkafka in Weir) runs unmodified.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit as _, Mac};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const API_SASL_HANDSHAKE: i16 = 17;
const API_API_VERSIONS: i16 = 18;
const API_SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const SCRAM_ITERATIONS: u32 = 4096;

/// The mechanism the front accepts and its users (name → password).
#[derive(Clone)]
pub struct Users {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// Name → password.
    pub passwords: BTreeMap<String, String>,
}

/// Relay connections from `listener` to the broker at `upstream`,
/// requiring SASL authentication first.
pub fn front_on(listener: TcpListener, upstream: SocketAddr, users: Users) {
    let users = Arc::new(users);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let users = users.clone();
            tokio::spawn(async move {
                let _ = serve(client, upstream, &users).await;
            });
        }
    });
}

/// One request frame: the header fields we need and the raw frame.
struct Request {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    /// The body, after the header.
    body: Vec<u8>,
    /// The whole frame as received (length prefix included).
    raw: Vec<u8>,
}

async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = usize::try_from(i32::from_be_bytes(len)).map_err(std::io::Error::other)?;
    let mut frame = vec![0u8; n];
    s.read_exact(&mut frame).await?;
    let mut raw = len.to_vec();
    raw.extend_from_slice(&frame);
    Ok(raw)
}

fn take<const N: usize>(b: &[u8], at: &mut usize) -> std::io::Result<[u8; N]> {
    let s = b
        .get(*at..*at + N)
        .ok_or_else(|| std::io::Error::other("short frame"))?;
    *at += N;
    Ok(s.try_into().unwrap())
}

fn uvarint(b: &[u8], at: &mut usize) -> std::io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let [byte] = take::<1>(b, at)?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(std::io::Error::other("bad varint"))
}

fn skip_tagged(b: &[u8], at: &mut usize) -> std::io::Result<()> {
    for _ in 0..uvarint(b, at)? {
        uvarint(b, at)?;
        let size = usize::try_from(uvarint(b, at)?).map_err(std::io::Error::other)?;
        *at += size;
    }
    Ok(())
}

fn parse(raw: Vec<u8>) -> std::io::Result<Request> {
    let b = &raw[4..];
    let mut at = 0;
    let api_key = i16::from_be_bytes(take(b, &mut at)?);
    let api_version = i16::from_be_bytes(take(b, &mut at)?);
    let correlation_id = i32::from_be_bytes(take(b, &mut at)?);
    let client_id_len = i16::from_be_bytes(take(b, &mut at)?);
    if client_id_len > 0 {
        at += usize::try_from(client_id_len).unwrap();
    }
    // Request header v2 (flexible versions) ends with tagged fields.
    if api_key == API_SASL_AUTHENTICATE && api_version >= 2 {
        skip_tagged(b, &mut at)?;
    }
    let body = b.get(at..).unwrap_or_default().to_vec();
    Ok(Request {
        api_key,
        api_version,
        correlation_id,
        body,
        raw,
    })
}

fn frame(correlation_id: i32, flexible_header: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&correlation_id.to_be_bytes());
    if flexible_header {
        out.push(0); // no tagged fields
    }
    out.extend_from_slice(body);
    let mut framed = i32::try_from(out.len()).unwrap().to_be_bytes().to_vec();
    framed.extend(out);
    framed
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap());
}

/// A `SaslAuthenticate` response body of `version`.
fn authenticate_response(version: i16, error: i16, message: Option<&str>, auth: &[u8]) -> Vec<u8> {
    let mut out = error.to_be_bytes().to_vec();
    if version >= 2 {
        match message {
            None => out.push(0),
            Some(m) => {
                put_uvarint(&mut out, m.len() as u64 + 1);
                out.extend_from_slice(m.as_bytes());
            }
        }
        put_uvarint(&mut out, auth.len() as u64 + 1);
        out.extend_from_slice(auth);
        out.extend_from_slice(&0i64.to_be_bytes());
        out.push(0);
    } else {
        match message {
            None => out.extend_from_slice(&(-1i16).to_be_bytes()),
            Some(m) => {
                out.extend_from_slice(&i16::try_from(m.len()).unwrap().to_be_bytes());
                out.extend_from_slice(m.as_bytes());
            }
        }
        out.extend_from_slice(&i32::try_from(auth.len()).unwrap().to_be_bytes());
        out.extend_from_slice(auth);
        if version >= 1 {
            out.extend_from_slice(&0i64.to_be_bytes());
        }
    }
    out
}

fn auth_bytes(req: &Request) -> std::io::Result<Vec<u8>> {
    let b = &req.body;
    let mut at = 0;
    let n = if req.api_version >= 2 {
        usize::try_from(uvarint(b, &mut at)?.saturating_sub(1)).unwrap()
    } else {
        usize::try_from(i32::from_be_bytes(take(b, &mut at)?)).map_err(std::io::Error::other)?
    };
    b.get(at..at + n)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| std::io::Error::other("short auth bytes"))
}

/// The SCRAM exchange in progress on one connection.
struct Scram {
    client_first_bare: String,
    server_first: String,
    nonce: String,
    password: String,
    salt: Vec<u8>,
}

enum Step {
    /// Reply with these bytes; authentication goes on.
    Continue(Vec<u8>),
    /// Reply with these bytes; the client is authenticated.
    Done(Vec<u8>),
    /// Refuse with this message.
    Fail(String),
}

fn attribute(message: &str, name: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn hmac_with(mechanism: &str, key: &[u8], data: &[u8]) -> Vec<u8> {
    if mechanism == "SCRAM-SHA-512" {
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    } else {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

fn hash_with(mechanism: &str, data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    if mechanism == "SCRAM-SHA-512" {
        sha2::Sha512::digest(data).to_vec()
    } else {
        sha2::Sha256::digest(data).to_vec()
    }
}

fn salted_password(mechanism: &str, password: &str, salt: &[u8]) -> Vec<u8> {
    if mechanism == "SCRAM-SHA-512" {
        let mut out = vec![0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, SCRAM_ITERATIONS, &mut out);
        out
    } else {
        let mut out = vec![0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, SCRAM_ITERATIONS, &mut out);
        out
    }
}

fn step(users: &Users, scram: &mut Option<Scram>, token: &[u8]) -> Step {
    let Ok(text) = std::str::from_utf8(token) else {
        return Step::Fail("authentication bytes are not UTF-8".into());
    };
    let mechanism = users.mechanism.as_str();
    if mechanism == "PLAIN" {
        let mut parts = text.split('\0');
        let (_authzid, user, password) = (parts.next(), parts.next(), parts.next());
        return match (user, password) {
            (Some(u), Some(p)) if users.passwords.get(u).is_some_and(|known| known == p) => {
                Step::Done(Vec::new())
            }
            _ => Step::Fail("Authentication failed: invalid username or password".into()),
        };
    }
    match scram.take() {
        None => {
            // client-first-message: gs2 header ("n,," or "n,a=...,"), then the bare part.
            let mut fields = text.splitn(3, ',');
            let (Some(_), Some(_), Some(bare)) = (fields.next(), fields.next(), fields.next())
            else {
                return Step::Fail("malformed client-first-message".into());
            };
            let user = attribute(bare, 'n')
                .unwrap_or_default()
                .replace("=2C", ",")
                .replace("=3D", "=");
            let Some(client_nonce) = attribute(bare, 'r') else {
                return Step::Fail("client-first-message without a nonce".into());
            };
            let Some(password) = users.passwords.get(&user) else {
                return Step::Fail("Authentication failed: invalid username or password".into());
            };
            let salt: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
            let nonce = format!(
                "{client_nonce}{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            );
            let server_first = format!("r={nonce},s={},i={SCRAM_ITERATIONS}", B64.encode(&salt));
            *scram = Some(Scram {
                client_first_bare: bare.to_owned(),
                server_first: server_first.clone(),
                nonce,
                password: password.clone(),
                salt,
            });
            Step::Continue(server_first.into_bytes())
        }
        Some(state) => {
            let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
                return Step::Fail("client-final-message without a proof".into());
            };
            if attribute(without_proof, 'r') != Some(state.nonce.as_str()) {
                return Step::Fail("client-final-message with a wrong nonce".into());
            }
            let Ok(proof) = B64.decode(proof) else {
                return Step::Fail("proof is not base64".into());
            };
            let salted = salted_password(mechanism, &state.password, &state.salt);
            let client_key = hmac_with(mechanism, &salted, b"Client Key");
            let stored_key = hash_with(mechanism, &client_key);
            let auth_message = format!(
                "{},{},{without_proof}",
                state.client_first_bare, state.server_first
            );
            let client_signature = hmac_with(mechanism, &stored_key, auth_message.as_bytes());
            let expected: Vec<u8> = client_key
                .iter()
                .zip(&client_signature)
                .map(|(a, b)| a ^ b)
                .collect();
            if proof != expected {
                return Step::Fail("Authentication failed: invalid username or password".into());
            }
            let server_key = hmac_with(mechanism, &salted, b"Server Key");
            let signature = hmac_with(mechanism, &server_key, auth_message.as_bytes());
            Step::Done(format!("v={}", B64.encode(signature)).into_bytes())
        }
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, users: &Users) -> std::io::Result<()> {
    let mut broker = TcpStream::connect(upstream).await?;
    let mut scram = None;
    let mut handshake_done = false;
    loop {
        let req = parse(read_frame(&mut client).await?)?;
        match req.api_key {
            API_API_VERSIONS => {
                broker.write_all(&req.raw).await?;
                let response = read_frame(&mut broker).await?;
                client.write_all(&response).await?;
            }
            API_SASL_HANDSHAKE => {
                let mut at = 0;
                let len = i16::from_be_bytes(take(&req.body, &mut at)?);
                let asked = req
                    .body
                    .get(at..at + usize::try_from(len.max(0)).unwrap())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let error = if asked == users.mechanism {
                    0
                } else {
                    UNSUPPORTED_SASL_MECHANISM
                };
                let mut body = error.to_be_bytes().to_vec();
                body.extend_from_slice(&1i32.to_be_bytes());
                body.extend_from_slice(
                    &i16::try_from(users.mechanism.len()).unwrap().to_be_bytes(),
                );
                body.extend_from_slice(users.mechanism.as_bytes());
                client
                    .write_all(&frame(req.correlation_id, false, &body))
                    .await?;
                handshake_done = error == 0;
            }
            API_SASL_AUTHENTICATE if handshake_done => {
                let flexible = req.api_version >= 2;
                match step(users, &mut scram, &auth_bytes(&req)?) {
                    Step::Continue(reply) => {
                        let body = authenticate_response(req.api_version, 0, None, &reply);
                        client
                            .write_all(&frame(req.correlation_id, flexible, &body))
                            .await?;
                    }
                    Step::Done(reply) => {
                        let body = authenticate_response(req.api_version, 0, None, &reply);
                        client
                            .write_all(&frame(req.correlation_id, flexible, &body))
                            .await?;
                        // Authenticated: from here on, a plain relay.
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                        return Ok(());
                    }
                    Step::Fail(message) => {
                        let body = authenticate_response(
                            req.api_version,
                            SASL_AUTHENTICATION_FAILED,
                            Some(&message),
                            &[],
                        );
                        client
                            .write_all(&frame(req.correlation_id, flexible, &body))
                            .await?;
                        return Ok(());
                    }
                }
            }
            _ => {
                // Anything else before authenticating: refused, as a broker
                // requiring SASL does, by closing the connection.
                let _ = ILLEGAL_SASL_STATE;
                return Ok(());
            }
        }
    }
}

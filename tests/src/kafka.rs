//! A minimal blocking Kafka protocol client for tests: encodes requests with the
//! `kafka-protocol` crate (independent of the broker's own code paths) and reads responses.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// One connection to a broker.
#[derive(Debug)]
pub struct KafkaConn {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaConn {
    pub fn connect(addr: SocketAddr) -> io::Result<KafkaConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(KafkaConn {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Encodes a request frame (size, header, body) without sending it.
    pub fn frame<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> (i32, Vec<u8>) {
        self.frame_with(key, version, |body| request.encode(body, version))
            .expect("request encodes")
    }

    /// A request frame whose body `encode_body` writes after the header.
    fn frame_with<E: std::fmt::Display>(
        &mut self,
        key: ApiKey,
        version: i16,
        encode_body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> io::Result<(i32, Vec<u8>)> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("runnel-tests"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .map_err(invalid)?;
        encode_body(&mut body).map_err(invalid)?;
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        Ok((correlation_id, frame))
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> io::Result<i32> {
        let (correlation_id, frame) = self.frame(key, version, request);
        self.send_raw(&frame)?;
        Ok(correlation_id)
    }

    /// Reads one response frame: its header (for `key` at `version`) and the body after it.
    fn read_response(&mut self, key: ApiKey, version: i16) -> io::Result<(i32, Bytes)> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(invalid)?;
        Ok((header.correlation_id, body))
    }

    /// Reads one response frame and decodes it as `key` at `version`; returns its correlation
    /// id and body.
    pub fn receive<T: Decodable>(&mut self, key: ApiKey, version: i16) -> io::Result<(i32, T)> {
        let (correlation_id, mut body) = self.read_response(key, version)?;
        let response = T::decode(&mut body, version).map_err(invalid)?;
        used_up(&body, key, version)?;
        Ok((correlation_id, response))
    }

    /// Sends a request and reads its response, checking the correlation id.
    pub fn call<R: Encodable, T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> io::Result<T> {
        let sent = self.send(key, version, request)?;
        let (received, response) = self.receive(key, version)?;
        assert_eq!(sent, received, "correlation id");
        Ok(response)
    }

    /// Sends any API's request at `version` and reads its response, decoded as that API's
    /// response; checks the correlation id and that the body is used up.
    pub fn call_kind(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &RequestKind,
    ) -> io::Result<ResponseKind> {
        let (sent, frame) = self.frame_with(key, version, |body| request.encode(body, version))?;
        self.send_raw(&frame)?;
        let (received, mut body) = self.read_response(key, version)?;
        if received != sent {
            return Err(invalid(format!("correlation id {received} for {sent}")));
        }
        let response = ResponseKind::decode(key, &mut body, version).map_err(invalid)?;
        used_up(&body, key, version)?;
        Ok(response)
    }

    /// Whether the broker closed the connection (EOF or reset within the read timeout).
    pub fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// An error unless every byte of a response body was decoded.
fn used_up(body: &Bytes, key: ApiKey, version: i16) -> io::Result<()> {
    if body.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "{} bytes left after the {key:?} v{version} response",
        body.len()
    )))
}

//! A small blocking Kafka client on the kafka-protocol codec, for runnelctl's admin requests:
//! one connection, one request at a time, every failure an error message (a CLI talks to
//! brokers the user names, so nothing here may panic on what comes back).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Largest response accepted (a Metadata of many thousand partitions fits easily).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// A connection to one broker.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    addr: String,
    next_id: i32,
}

impl Client {
    /// Connects to `addr` (`host:port`) with `timeout` for the connection and each answer.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Client, String> {
        use std::net::ToSocketAddrs;
        let target = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve {addr}"))?;
        let stream = TcpStream::connect_timeout(&target, timeout)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        Ok(Client {
            stream,
            addr: addr.to_owned(),
            next_id: 0,
        })
    }

    /// The address this client connected to, as it was named.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` as `key` at `version` and decodes the answer.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        self.next_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.next_id;
        header.client_id = Some(StrBytes::from_static_str("runnelctl"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .map_err(|e| format!("encoding a {key:?} request: {e}"))?;
        request
            .encode(&mut body, version)
            .map_err(|e| format!("encoding a {key:?} request: {e}"))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("sending to {}: {e}", self.addr))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| format!("reading from {}: {e}", self.addr))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| format!("{} sent a response of {size} bytes", self.addr))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("reading from {}: {e}", self.addr))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| format!("bad {key:?} response header: {e}"))?;
        if header.correlation_id != self.next_id {
            return Err(format!(
                "{} answered request {} with {}",
                self.addr, self.next_id, header.correlation_id
            ));
        }
        Resp::decode(&mut body, version).map_err(|e| format!("bad {key:?} response: {e}"))
    }
}

/// The message for a nonzero Kafka error code: its name, and the broker's message if any.
pub fn kafka_error(code: i16, message: Option<&str>) -> String {
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{name}: {m}"),
        None => name,
    }
}

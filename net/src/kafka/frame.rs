//! Kafka's framing: every request and response is a 4-byte big-endian size, then that many
//! bytes. Frames above `socket.request.max.bytes` are refused from the size alone, before
//! anything is allocated for them. A frame's bytes are taken from the broker-wide
//! `queued.max.request.bytes` pool as soon as its size is known, also before its buffer is
//! reserved: while the pool is full the connection doesn't read.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use runnel_engine::rt::TcpStream;

use crate::conn_limits::queued::{QueuedBytes, QueuedRequestBytes};

/// How much spare room a receive gets when no frame size tells more.
const READ_CHUNK: usize = 64 << 10;

/// Why a connection's stream of frames ended.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame")]
    Truncated,
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads frames from one connection, keeping bytes that arrived early (pipelined requests).
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max_frame: usize,
    /// Where the frames' bytes are taken from (the broker's requests; not a client's
    /// responses).
    pool: Option<&'static QueuedRequestBytes>,
    /// Taken for the frame being received.
    queued: Option<QueuedBytes>,
    /// When bytes last arrived (or the reader last waited for the pool): the connection's
    /// idle timer reads it.
    activity: Rc<Cell<Instant>>,
}

impl FrameReader {
    /// A reader of frames up to `max_frame` bytes, taken from no pool (a client's reader).
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_frame,
            pool: None,
            queued: None,
            activity: Rc::new(Cell::new(Instant::now())),
        }
    }

    /// A reader of request frames: each frame's bytes are taken from `pool` before it is
    /// read, and `activity` is set whenever bytes arrive.
    pub fn for_requests(
        max_frame: usize,
        pool: &'static QueuedRequestBytes,
        activity: Rc<Cell<Instant>>,
    ) -> Self {
        FrameReader {
            pool: Some(pool),
            activity,
            ..FrameReader::new(max_frame)
        }
    }

    /// The next frame's body (without its size prefix).
    pub async fn next(&mut self, stream: &TcpStream) -> Result<Bytes, FrameError> {
        self.next_request(stream).await.map(|(frame, _)| frame)
    }

    /// The next frame's body, with its bytes in the pool (if the reader has one): give them
    /// back by dropping them once the request is answered.
    pub async fn next_request(
        &mut self,
        stream: &TcpStream,
    ) -> Result<(Bytes, Option<QueuedBytes>), FrameError> {
        loop {
            if let Some(size) = self.declared_size()? {
                let queued = match (self.queued.take(), self.pool) {
                    (Some(queued), _) => Some(queued),
                    (None, Some(pool)) => {
                        let activity = &self.activity;
                        let waiting = || activity.set(Instant::now());
                        Some(pool.acquire(size, waiting).await)
                    }
                    (None, None) => None,
                };
                if let Some(frame) = self.take_frame()? {
                    return Ok((frame, queued));
                }
                self.queued = queued;
            }
            let wanted = self.bytes_needed();
            self.buf.reserve(wanted.max(READ_CHUNK));
            let (result, buf) = stream.recv(std::mem::take(&mut self.buf)).await;
            self.buf = buf;
            match result? {
                0 if self.buf.is_empty() => return Err(FrameError::Closed),
                0 => return Err(FrameError::Truncated),
                _ => self.activity.set(Instant::now()),
            }
        }
    }

    /// Splits a complete frame off the front of the buffer, if there is one.
    fn take_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = self.declared_size()? else {
            return Ok(None);
        };
        if self.buf.len() < 4 + size {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(4 + size);
        frame.advance(4);
        Ok(Some(frame.freeze()))
    }

    /// The size the buffered frame header declares, checked against the limit.
    fn declared_size(&self) -> Result<Option<usize>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes"));
        let size = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size: size as i64,
                max: self.max_frame,
            });
        }
        Ok(Some(size))
    }

    /// Bytes still missing for the frame being received (0 when unknown).
    fn bytes_needed(&self) -> usize {
        match self.declared_size() {
            Ok(Some(size)) => (4 + size).saturating_sub(self.buf.len()),
            _ => 0,
        }
    }
}

/// Appends a frame: `body` prefixed with its size.
pub fn put_frame(out: &mut BytesMut, body: &[u8]) {
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_with(bytes: &[u8], max: usize) -> FrameReader {
        let mut reader = FrameReader::new(max);
        reader.buf.extend_from_slice(bytes);
        reader
    }

    #[test]
    fn splits_pipelined_frames() {
        let mut out = BytesMut::new();
        put_frame(&mut out, b"first");
        put_frame(&mut out, b"");
        put_frame(&mut out, b"third");
        let mut reader = reader_with(&out[..out.len() - 2], 100);
        assert_eq!(reader.take_frame().unwrap().unwrap(), &b"first"[..]);
        assert_eq!(reader.take_frame().unwrap().unwrap(), &b""[..]);
        assert!(
            reader.take_frame().unwrap().is_none(),
            "third is incomplete"
        );
        assert_eq!(reader.bytes_needed(), 2);
    }

    #[test]
    fn refuses_oversized_and_negative_sizes_before_reading_them() {
        let mut reader = reader_with(&101i32.to_be_bytes(), 100);
        assert!(matches!(
            reader.take_frame(),
            Err(FrameError::TooLarge {
                size: 101,
                max: 100
            })
        ));
        let mut reader = reader_with(&(-1i32).to_be_bytes(), 100);
        assert!(matches!(reader.take_frame(), Err(FrameError::Negative(-1))));
        let mut reader = reader_with(&100i32.to_be_bytes(), 100);
        assert!(reader.take_frame().unwrap().is_none());
    }
}

//! Writing a response whose records stay in segment files: the bytes around them with send,
//! the records with splice (file -> pipe -> socket), so record bytes never enter user memory.
//! Each shard keeps a small pool of pipes sized with F_SETPIPE_SZ.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use bytes::BytesMut;
use runnel_engine::rt::{self, File, Pipe, TcpStream};

use super::fetch_response::Piece;

/// Pipe size asked for (Linux's default `fs.pipe-max-size` allows 1 MiB).
const PIPE_CAPACITY: usize = 1 << 20;
/// Pipes kept per shard between responses.
const POOLED_PIPES: usize = 16;
/// Byte pieces larger than this are sent on their own rather than gathered into one buffer.
const GATHER_LIMIT: usize = 64 << 10;

thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// Sends `head` (frame size and response header) and then every piece, in order.
pub async fn send_pieces(
    stream: &TcpStream,
    mut pending: BytesMut,
    pieces: Vec<Piece>,
) -> io::Result<()> {
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) if bytes.len() <= GATHER_LIMIT => pending.extend_from_slice(&bytes),
            Piece::Bytes(bytes) => {
                flush(stream, &mut pending).await?;
                stream.send_all(bytes).await.0?;
            }
            Piece::File { fd, position, len } => {
                flush(stream, &mut pending).await?;
                splice_range(stream, fd, position, len).await?;
            }
        }
    }
    flush(stream, &mut pending).await
}

async fn flush(stream: &TcpStream, pending: &mut BytesMut) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let (result, _) = stream.send_all(pending.split()).await;
    result
}

/// Moves `len` bytes of `fd` from `position` to the socket through a pooled pipe.
async fn splice_range(
    stream: &TcpStream,
    fd: OwnedFd,
    mut position: u64,
    mut left: u64,
) -> io::Result<()> {
    let file = File::from_std(std::fs::File::from(fd));
    let pipe = take_pipe()?;
    let capacity = pipe.capacity() as u64;
    while left > 0 {
        let filled = rt::splice(
            &file,
            Some(position),
            pipe.writer(),
            None,
            left.min(capacity) as usize,
        )
        .await?;
        if filled == 0 {
            // The segment is shorter than planned; the pipe is empty, so it can be reused.
            return_pipe(pipe);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than its planned range",
            ));
        }
        let mut drained = 0;
        while drained < filled {
            // On error the pipe may still hold data: it is dropped, not pooled.
            let moved = rt::splice(pipe.reader(), None, stream, None, filled - drained).await?;
            if moved == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            drained += moved;
        }
        position += filled as u64;
        left -= filled as u64;
    }
    return_pipe(pipe);
    Ok(())
}

fn take_pipe() -> io::Result<Pipe> {
    if let Some(pipe) = PIPES.with(|p| p.borrow_mut().pop()) {
        return Ok(pipe);
    }
    Pipe::new(PIPE_CAPACITY).or_else(|_| Pipe::new(64 << 10))
}

fn return_pipe(pipe: Pipe) {
    PIPES.with(|p| {
        let mut pipes = p.borrow_mut();
        if pipes.len() < POOLED_PIPES {
            pipes.push(pipe);
        }
    });
}

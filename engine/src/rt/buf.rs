//! Buffers that move into an I/O operation and come back with its result.
//!
//! An operation in flight may be written to by the kernel at any moment until its completion
//! arrives, even after the future that started it was dropped. So the operation owns its buffer:
//! the caller hands it over and gets it back with the result, and a dropped operation keeps the
//! buffer alive until the kernel is done with it (the tokio-uring / compio ownership model).

use bytes::{Bytes, BytesMut};

/// A buffer whose initialized bytes can be sent or written by the kernel.
///
/// # Safety
/// `stable_ptr` must point to `bytes_init()` initialized bytes, and the pointer must stay valid
/// and unchanged when the value is moved (heap storage, not inline arrays), because an
/// operation moves its buffer around while the kernel holds the pointer.
pub unsafe trait IoBuf: Send + 'static {
    /// Start of the buffer's memory.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialized bytes, the ones an operation sends or writes.
    fn bytes_init(&self) -> usize;
}

/// A buffer the kernel can fill: reads append to the spare capacity after the initialized bytes.
///
/// # Safety
/// Same as [`IoBuf`]; in addition `stable_mut_ptr` must be valid for writes of
/// `bytes_total()` bytes, and `set_init` must only be called with a length the kernel reported
/// as written.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer's memory, for writing.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Total capacity in bytes.
    fn bytes_total(&self) -> usize;
    /// Marks the first `len` bytes as initialized.
    ///
    /// # Safety
    /// The first `len` bytes must have been written.
    unsafe fn set_init(&mut self, len: usize);
}

/// `IoBuf` + `IoBufMut` for growable heap buffers with `as_ptr`, `len`, `capacity`, `set_len`.
macro_rules! impl_growable_buf {
    ($($ty:ty),*) => {$(
        // SAFETY: the storage is on the heap and does not move when the handle is moved.
        unsafe impl IoBuf for $ty {
            fn stable_ptr(&self) -> *const u8 {
                self.as_ptr()
            }
            fn bytes_init(&self) -> usize {
                self.len()
            }
        }

        // SAFETY: as above; the length is only raised to bytes the kernel wrote.
        unsafe impl IoBufMut for $ty {
            fn stable_mut_ptr(&mut self) -> *mut u8 {
                self.as_mut_ptr()
            }
            fn bytes_total(&self) -> usize {
                self.capacity()
            }
            unsafe fn set_init(&mut self, len: usize) {
                if len > self.len() {
                    // SAFETY: the caller guarantees the bytes up to `len` (<= capacity) were
                    // written.
                    unsafe { self.set_len(len) };
                }
            }
        }
    )*};
}

impl_growable_buf!(Vec<u8>, BytesMut);

// SAFETY: Bytes is an immutable, reference-counted heap (or static) slice.
unsafe impl IoBuf for Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: a boxed slice lives on the heap and is fully initialized.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: static data never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

/// Where a read lands: the spare capacity of `buf`, as (pointer, length).
pub(crate) fn spare_parts<B: IoBufMut>(buf: &mut B) -> (*mut u8, usize) {
    let init = buf.bytes_init();
    let spare = buf.bytes_total() - init;
    // SAFETY: `init <= bytes_total`, so the offset stays within (or one past) the allocation.
    let ptr = unsafe { buf.stable_mut_ptr().add(init) };
    (ptr, spare)
}

/// What a send or write carries: the initialized bytes of `buf` from `offset`, as (pointer, length).
pub(crate) fn init_parts_from<B: IoBuf>(buf: &B, offset: usize) -> (*const u8, usize) {
    let init = buf.bytes_init();
    let offset = offset.min(init);
    // SAFETY: `offset <= init`, so the pointer stays within (or one past) the initialized bytes.
    let ptr = unsafe { buf.stable_ptr().add(offset) };
    (ptr, init - offset)
}

/// Records that the kernel appended `n` bytes to the spare capacity of `buf`.
pub(crate) fn advance_init<B: IoBufMut>(buf: &mut B, n: usize) {
    let new_len = buf.bytes_init() + n;
    debug_assert!(new_len <= buf.bytes_total());
    // SAFETY: the kernel reported `n` bytes written right after the initialized ones.
    unsafe { buf.set_init(new_len.min(buf.bytes_total())) };
}

/// Repeats `write_from(buf, written_so_far)` until every initialized byte of `buf` is written:
/// the loop shared by `send_all` and `write_all_at`. A write of zero bytes is `WriteZero`.
pub(crate) async fn write_all<B, F, Fut>(mut buf: B, mut write_from: F) -> (std::io::Result<()>, B)
where
    B: IoBuf,
    F: FnMut(B, usize) -> Fut,
    Fut: std::future::Future<Output = (std::io::Result<usize>, B)>,
{
    let total = buf.bytes_init();
    let mut done = 0;
    while done < total {
        let (result, returned) = write_from(buf, done).await;
        buf = returned;
        match result {
            Ok(0) => return (Err(std::io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_spare_capacity_is_after_len() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        let (ptr, len) = spare_parts(&mut v);
        assert_eq!(len, v.capacity() - 3);
        assert_eq!(ptr as usize, v.as_ptr() as usize + 3);
        advance_init(&mut v, 0);
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn init_parts_clamps_offset() {
        let v = b"hello".to_vec();
        let (_, len) = init_parts_from(&v, 2);
        assert_eq!(len, 3);
        let (_, len) = init_parts_from(&v, 9);
        assert_eq!(len, 0);
    }

    #[test]
    fn bytesmut_set_init_never_shrinks() {
        let mut b = BytesMut::with_capacity(8);
        b.extend_from_slice(b"12345");
        // SAFETY: 3 < len; set_init must leave the length alone.
        unsafe { b.set_init(3) };
        assert_eq!(&b[..], b"12345");
    }
}

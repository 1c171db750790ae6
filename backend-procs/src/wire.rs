//! The wire protocol between the parent and its worker processes, written and read by hand so
//! that nothing a worker sends is trusted.
//!
//! Both directions carry *frames* over one `socketpair(AF_UNIX, SOCK_STREAM)`: an 8-byte
//! little-endian body length, then the body. A body is a tag byte and the message's fields:
//! integers little-endian, strings and byte strings as a length then the bytes, options as a
//! 0/1 byte. The parent checks a frame's length against the pool's `max_message_size` before
//! it reads (and never allocates more than has actually arrived), and [`Reader`] checks every
//! length against what is left of the body, so a hostile or broken worker cannot make the
//! parent allocate, panic or misread: it gets a [`WireError`], and the pool fails that worker.
//!
//! Arguments and results are opaque bytes here (encoded by [`crate::codec`]); the worker
//! decodes them with the registered function's own types. Large payloads are not copied into
//! the frame: [`Frame`] keeps them aside and the writer sends them with vectored writes.

use std::fmt;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::{recv, RecvFlags};

/// Bytes of the length prefix.
pub(crate) const HEADER: usize = 8;

/// Payloads at least this large are sent from their own buffer instead of being copied into
/// the frame.
const SPLICE_FROM: usize = 16 * 1024;

/// Encoded bytes: an argument or a return value. Cheap to clone; a value received from a worker
/// shares the frame it arrived in instead of being copied out of it.
#[derive(Clone)]
#[doc(hidden)]
pub struct Bytes {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Bytes {
    pub(crate) fn new(bytes: Vec<u8>) -> Bytes {
        let end = bytes.len();
        Bytes {
            buf: Arc::new(bytes),
            start: 0,
            end,
        }
    }

    /// `value`, encoded with the task codec.
    pub(crate) fn encode<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<Bytes, crate::codec::CodecError> {
        Ok(Bytes::new(crate::codec::encode(value)?))
    }

    /// `value`, owned, encoded with the task codec (see [`crate::codec::encode_owned`]).
    pub(crate) fn encode_owned<T: serde::Serialize>(
        value: T,
    ) -> Result<Bytes, crate::codec::CodecError> {
        Ok(Bytes::new(crate::codec::encode_owned(value)?))
    }

    /// The bytes as an owned vector: moved out when this is the only reference to the buffer
    /// (a part of it is moved to its front, within memory already touched, instead of copied
    /// into fresh memory: for a large value, page faults cost far more than the move).
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match Arc::try_unwrap(self.buf) {
            Ok(mut v) => {
                v.truncate(self.end);
                if self.start > 0 {
                    v.drain(..self.start);
                }
                v
            }
            Err(buf) => buf[self.start..self.end].to_vec(),
        }
    }

    /// These bytes without their first `n`.
    pub(crate) fn skip(mut self, n: usize) -> Bytes {
        self.start = (self.start + n).min(self.end);
        self
    }

    /// These bytes cut to their first `n`.
    pub(crate) fn truncate(mut self, n: usize) -> Bytes {
        self.end = self.end.min(self.start + n);
        self
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// The length only: a message printed in an error must not dump a payload.
impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.len())
    }
}

/// Parent → worker.
#[derive(Debug)]
pub(crate) enum Request {
    /// Run the pool's initializer (`task` with `arg`), then answer `Initialized`.
    Init { task: Option<(String, Bytes)> },
    /// Run one task.
    Run { id: u64, task: String, arg: Bytes },
    /// Run one task on each argument of a chunk (`map` with a chunk size); `None` marks an
    /// argument that did not serialize in the parent.
    RunChunk {
        id: u64,
        task: String,
        args: Vec<Option<Bytes>>,
    },
    /// Exit cleanly.
    Exit,
}

/// Worker → parent.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The first message: the one-time token the worker was started with, and its pid.
    Hello { token: String, pid: u32 },
    /// The initializer ran (`Returned` of an empty value when there is none).
    Initialized(Outcome),
    /// One task's outcome.
    Done { id: u64, outcome: Outcome },
    /// One outcome per argument of a chunk, in order.
    ChunkDone { id: u64, outcomes: Vec<Outcome> },
}

/// How one call went, as the worker saw it.
#[derive(Debug)]
#[doc(hidden)]
pub enum Outcome {
    /// The function's return value, encoded.
    Returned(Bytes),
    /// The function panicked.
    Panicked {
        message: String,
        location: Option<String>,
    },
    /// No function of that name is registered in the worker.
    UnknownTask(String),
    /// The argument could not be decoded as the function's parameter type.
    BadArgument(String),
    /// The return value could not be encoded.
    BadResult(String),
}

/// A frame that is not one the protocol allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireError(pub(crate) String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

// ---- writing ------------------------------------------------------------------------------

/// An encoded frame: the length prefix and the small fields in `head`, and large payloads kept
/// aside, each to be sent after `head[..offset]`.
pub(crate) struct Frame {
    head: Vec<u8>,
    splices: Vec<(usize, Bytes)>,
    len: usize,
}

impl Frame {
    fn start(tag: u8) -> Frame {
        let mut head = Vec::with_capacity(64);
        head.extend_from_slice(&[0; HEADER]);
        head.push(tag);
        Frame {
            head,
            splices: Vec::new(),
            len: HEADER + 1,
        }
    }

    fn u8(&mut self, v: u8) {
        self.head.push(v);
        self.len += 1;
    }

    fn u32(&mut self, v: u32) {
        self.head.extend_from_slice(&v.to_le_bytes());
        self.len += 4;
    }

    fn u64(&mut self, v: u64) {
        self.head.extend_from_slice(&v.to_le_bytes());
        self.len += 8;
    }

    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.head.extend_from_slice(s.as_bytes());
        self.len += s.len();
    }

    fn bytes(&mut self, b: &Bytes) {
        self.u64(b.len() as u64);
        if b.len() >= SPLICE_FROM {
            self.splices.push((self.head.len(), b.clone()));
        } else {
            self.head.extend_from_slice(b);
        }
        self.len += b.len();
    }

    fn finish(mut self) -> Frame {
        let body = (self.len - HEADER) as u64;
        self.head[..HEADER].copy_from_slice(&body.to_le_bytes());
        self
    }

    /// The whole frame's length, prefix included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The frame's pieces in order, from byte `from` on, for one vectored write (at most
    /// `IOV_MAX` pieces: a write sends a prefix of the frame anyway).
    pub(crate) fn slices(&self, from: usize) -> Vec<IoSlice<'_>> {
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(2 * self.splices.len() + 1);
        let mut head_at = 0;
        for (at, payload) in &self.splices {
            pieces.push(&self.head[head_at..*at]);
            pieces.push(payload);
            head_at = *at;
        }
        pieces.push(&self.head[head_at..]);
        let mut out = Vec::with_capacity(pieces.len());
        let mut pos = 0;
        for piece in pieces {
            let end = pos + piece.len();
            if end > from {
                out.push(IoSlice::new(&piece[from.saturating_sub(pos)..]));
            }
            pos = end;
        }
        out.truncate(1024);
        out
    }
}

fn outcome(f: &mut Frame, o: &Outcome) {
    match o {
        Outcome::Returned(b) => {
            f.u8(0);
            f.bytes(b);
        }
        Outcome::Panicked { message, location } => {
            f.u8(1);
            f.str(message);
            match location {
                Some(l) => {
                    f.u8(1);
                    f.str(l);
                }
                None => f.u8(0),
            }
        }
        Outcome::UnknownTask(s) => {
            f.u8(2);
            f.str(s);
        }
        Outcome::BadArgument(s) => {
            f.u8(3);
            f.str(s);
        }
        Outcome::BadResult(s) => {
            f.u8(4);
            f.str(s);
        }
    }
}

impl Request {
    pub(crate) fn frame(&self) -> Frame {
        match self {
            Request::Init { task } => {
                let mut f = Frame::start(10);
                match task {
                    Some((name, arg)) => {
                        f.u8(1);
                        f.str(name);
                        f.bytes(arg);
                    }
                    None => f.u8(0),
                }
                f.finish()
            }
            Request::Run { id, task, arg } => {
                let mut f = Frame::start(11);
                f.u64(*id);
                f.str(task);
                f.bytes(arg);
                f.finish()
            }
            Request::RunChunk { id, task, args } => {
                let mut f = Frame::start(12);
                f.u64(*id);
                f.str(task);
                f.u32(args.len() as u32);
                for arg in args {
                    match arg {
                        Some(b) => {
                            f.u8(1);
                            f.bytes(b);
                        }
                        None => f.u8(0),
                    }
                }
                f.finish()
            }
            Request::Exit => Frame::start(13).finish(),
        }
    }
}

impl Reply {
    pub(crate) fn frame(&self) -> Frame {
        match self {
            Reply::Hello { token, pid } => {
                let mut f = Frame::start(1);
                f.str(token);
                f.u32(*pid);
                f.finish()
            }
            Reply::Initialized(o) => {
                let mut f = Frame::start(2);
                outcome(&mut f, o);
                f.finish()
            }
            Reply::Done { id, outcome: o } => {
                let mut f = Frame::start(3);
                f.u64(*id);
                outcome(&mut f, o);
                f.finish()
            }
            Reply::ChunkDone { id, outcomes } => {
                let mut f = Frame::start(4);
                f.u64(*id);
                f.u32(outcomes.len() as u32);
                for o in outcomes {
                    outcome(&mut f, o);
                }
                f.finish()
            }
        }
    }
}

// ---- reading ------------------------------------------------------------------------------

/// Reads that did not produce a frame.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the socket.
    Closed,
    /// The bytes break the protocol.
    Protocol(String),
    /// The socket failed.
    Os(std::io::Error),
}

/// Bytes read from the socket in one system call when no large body is being filled: a small
/// frame's prefix and body (and often the next frame's) arrive in one read.
const READ_AHEAD: usize = 64 * 1024;

/// Cuts frames out of a byte stream, reading in large pieces: a small frame costs one read
/// system call (prefix and body together), a large body is read straight into its own buffer,
/// growing only as bytes arrive (at most 8 MiB ahead), so a lying prefix costs no memory.
pub(crate) struct FrameReader {
    /// Bytes read but not yet cut into frames: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// A large body being read: what has arrived (its `len()`), and the body's length.
    body: Option<(Vec<u8>, usize)>,
    max_message_size: u64,
    /// How far ahead of the bytes that have arrived a large body's buffer may be reserved.
    grow_step: usize,
}

impl FrameReader {
    /// A reader of untrusted frames (the parent's, of what a worker sends): a frame's length
    /// is checked against `max_message_size`, and a large body's buffer grows as it arrives.
    pub(crate) fn untrusted(max_message_size: u64) -> FrameReader {
        FrameReader {
            buf: vec![0; READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
            body: None,
            max_message_size,
            grow_step: 8 << 20,
        }
    }

    /// A reader of trusted frames (a worker's, of what its parent sends): a large body's
    /// buffer is allocated whole at once.
    pub(crate) fn trusted() -> FrameReader {
        FrameReader {
            grow_step: usize::MAX,
            ..FrameReader::untrusted(u64::MAX)
        }
    }

    /// The next whole body if it has already been read (no system call).
    pub(crate) fn buffered(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        if let Some((body, len)) = &self.body {
            if body.len() < *len {
                return Ok(None);
            }
            let (body, _) = self.body.take().expect("checked above");
            return Ok(Some(body));
        }
        let have = self.end - self.start;
        if have < HEADER {
            return Ok(None);
        }
        let header: [u8; HEADER] = self.buf[self.start..self.start + HEADER]
            .try_into()
            .expect("HEADER bytes");
        let len = body_len(header);
        if len > self.max_message_size {
            return Err(ReadError::Protocol(format!(
                "announced a message of {len} bytes, over the pool's max_message_size of {}",
                self.max_message_size
            )));
        }
        let len = usize::try_from(len)
            .map_err(|_| ReadError::Protocol(format!("announced a message of {len} bytes")))?;
        if have - HEADER >= len {
            let from = self.start + HEADER;
            let body = self.buf[from..from + len].to_vec();
            self.start = from + len;
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
            return Ok(Some(body));
        }
        if HEADER + len > self.buf.len() {
            // Too large for the read-ahead buffer: the body gets its own, which the next reads
            // fill directly.
            let from = self.start + HEADER;
            let part = &self.buf[from..self.end];
            let mut body = Vec::with_capacity(part.len().max(len.min(self.grow_step)));
            body.extend_from_slice(part);
            self.body = Some((body, len));
            (self.start, self.end) = (0, 0);
        }
        Ok(None)
    }

    /// One read from `source`, then the next whole body if there is one now.
    pub(crate) fn read_once(
        &mut self,
        source: &mut impl ByteSource,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        if let Some(frame) = self.buffered()? {
            return Ok(Some(frame));
        }
        if let Some((body, len)) = &mut self.body {
            // Straight into the body's own buffer, reserved (not touched) at most `grow_step`
            // ahead of what has arrived and never past the frame's end: no zeroing pass over
            // memory the read fills anyway.
            let want = (*len - body.len()).min(self.grow_step);
            body.reserve(want);
            let spare = &mut body.spare_capacity_mut()[..want];
            let start = spare.as_ptr().cast::<u8>();
            if let Some(init) = source.read_uninit(spare)? {
                let n = init.len();
                assert!(
                    std::ptr::eq(init.as_ptr(), start) && n <= want,
                    "a read must fill the buffer it was given from its start"
                );
                // SAFETY: `init` is a `&mut [u8]` over the first `n` bytes of the spare
                // capacity (checked just above: same start, within it), so those bytes are
                // initialized `u8`s, and `len + n` is within the capacity.
                unsafe { body.set_len(body.len() + n) };
            }
            return self.buffered();
        }
        if self.end == self.buf.len() {
            // Only a frame's beginning is left at the end of the buffer: move it to the front.
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if let Some(n) = source.read(&mut self.buf[self.end..])? {
            self.end += n;
        }
        self.buffered()
    }
}

/// What a [`FrameReader`] reads from: a socket, or a test's scripted stream.
pub(crate) trait ByteSource {
    /// One read into `buf` (not empty): how many bytes came, `None` if none came now.
    fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError>;

    /// One read into memory not initialized yet: the bytes that came, at the front of `buf`.
    /// By default, up to 512 bytes of `buf` are zeroed and [`read`](Self::read) fills it (a read
    /// may always bring less than it was offered).
    fn read_uninit<'a>(
        &mut self,
        buf: &'a mut [MaybeUninit<u8>],
    ) -> Result<Option<&'a mut [u8]>, ReadError> {
        let take = buf.len().min(512);
        let buf = &mut buf[..take];
        // SAFETY: `take` elements from the start of `buf`, which has them, are zeroed; every
        // element is then initialized, and the slice is re-typed as the `u8`s they now are.
        let buf = unsafe {
            buf.as_mut_ptr().write_bytes(0, take);
            &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8])
        };
        Ok(self.read(buf)?.map(|n| &mut buf[..n]))
    }
}

/// A socket as a [`ByteSource`]: `recv` with these flags; a read that is interrupted or finds
/// nothing (`DONTWAIT`, or the receive timeout) is `None`; an end is [`ReadError::Closed`].
pub(crate) struct Recv<'s> {
    pub(crate) sock: &'s OwnedFd,
    pub(crate) flags: RecvFlags,
    /// An interrupted read is retried rather than reported as `None`.
    pub(crate) retry_interrupted: bool,
}

impl Recv<'_> {
    /// A `recv`'s byte count as a read's answer; `None`: interrupted, to be retried.
    fn settle(&self, got: rustix::io::Result<usize>) -> Option<Result<Option<usize>, ReadError>> {
        Some(match got {
            Ok(0) => Err(ReadError::Closed),
            Ok(n) => Ok(Some(n)),
            Err(Errno::AGAIN) => Ok(None),
            Err(Errno::INTR) if self.retry_interrupted => return None,
            Err(Errno::INTR) => Ok(None),
            Err(Errno::CONNRESET) => Err(ReadError::Closed),
            Err(e) => Err(ReadError::Os(e.into())),
        })
    }
}

impl ByteSource for Recv<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        loop {
            let got = recv(self.sock, &mut *buf, self.flags).map(|(_, n)| n);
            if let Some(result) = self.settle(got) {
                return result;
            }
        }
    }

    fn read_uninit<'a>(
        &mut self,
        buf: &'a mut [MaybeUninit<u8>],
    ) -> Result<Option<&'a mut [u8]>, ReadError> {
        loop {
            // rustix hands back the part of `buf` the read filled, as initialized bytes.
            let got = recv(self.sock, &mut *buf, self.flags).map(|((init, _), _)| init.len());
            match self.settle(got) {
                Some(Ok(Some(n))) => {
                    // SAFETY: the read just initialized the first `n` bytes of `buf`.
                    let init =
                        unsafe { &mut *(&mut buf[..n] as *mut [MaybeUninit<u8>] as *mut [u8]) };
                    return Ok(Some(init));
                }
                Some(Ok(None)) => return Ok(None),
                Some(Err(e)) => return Err(e),
                None => continue,
            }
        }
    }
}

/// The body length a frame's prefix announces.
pub(crate) fn body_len(header: [u8; HEADER]) -> u64 {
    u64::from_le_bytes(header)
}

/// A cursor over one received body that checks every length before it uses it.
struct Reader {
    buf: Arc<Vec<u8>>,
    pos: usize,
}

impl Reader {
    fn new(body: Vec<u8>) -> Reader {
        Reader {
            buf: Arc::new(body),
            pos: 0,
        }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<std::ops::Range<usize>, WireError> {
        if n > self.left() {
            return Err(bad(format!(
                "a frame claims {n} bytes of {what} but only {} remain",
                self.left()
            )));
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        let r = self.take(1, what)?;
        Ok(self.buf[r.start])
    }

    fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        let r = self.take(4, what)?;
        Ok(u32::from_le_bytes(self.buf[r].try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        let r = self.take(8, what)?;
        Ok(u64::from_le_bytes(self.buf[r].try_into().expect("8 bytes")))
    }

    fn len(&mut self, what: &str) -> Result<usize, WireError> {
        let n = self.u64(what)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.left())
            .ok_or_else(|| {
                bad(format!(
                    "a frame claims {n} bytes of {what} but only {} remain",
                    self.left()
                ))
            })
    }

    fn str(&mut self, what: &str) -> Result<String, WireError> {
        let n = self.len(what)?;
        let r = self.take(n, what)?;
        String::from_utf8(self.buf[r].to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
    }

    fn bytes(&mut self, what: &str) -> Result<Bytes, WireError> {
        let n = self.len(what)?;
        let r = self.take(n, what)?;
        Ok(Bytes {
            buf: self.buf.clone(),
            start: r.start,
            end: r.end,
        })
    }

    fn opt(&mut self, what: &str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(bad(format!("bad option tag {t} in {what}"))),
        }
    }

    /// A count of items that each take at least one byte: bounded by what is left.
    fn count(&mut self, what: &str) -> Result<usize, WireError> {
        let n = self.u32(what)? as usize;
        if n > self.left() {
            return Err(bad(format!(
                "a frame claims {n} {what} in {} bytes",
                self.left()
            )));
        }
        Ok(n)
    }

    fn outcome(&mut self) -> Result<Outcome, WireError> {
        Ok(match self.u8("an outcome")? {
            0 => Outcome::Returned(self.bytes("a result")?),
            1 => {
                let message = self.str("a panic message")?;
                let location = if self.opt("a panic location")? {
                    Some(self.str("a panic location")?)
                } else {
                    None
                };
                Outcome::Panicked { message, location }
            }
            2 => Outcome::UnknownTask(self.str("a task name")?),
            3 => Outcome::BadArgument(self.str("an error")?),
            4 => Outcome::BadResult(self.str("an error")?),
            t => return Err(bad(format!("unknown outcome tag {t}"))),
        })
    }

    fn end(self) -> Result<(), WireError> {
        match self.left() {
            0 => Ok(()),
            n => Err(bad(format!("{n} stray bytes after a message"))),
        }
    }
}

impl Reply {
    /// Decodes a body received from a worker.
    pub(crate) fn decode(body: Vec<u8>) -> Result<Reply, WireError> {
        let mut r = Reader::new(body);
        let reply = match r.u8("a message tag")? {
            1 => Reply::Hello {
                token: r.str("a token")?,
                pid: r.u32("a pid")?,
            },
            2 => Reply::Initialized(r.outcome()?),
            3 => Reply::Done {
                id: r.u64("a task id")?,
                outcome: r.outcome()?,
            },
            4 => {
                let id = r.u64("a task id")?;
                let n = r.count("outcomes")?;
                let mut outcomes = Vec::with_capacity(n);
                for _ in 0..n {
                    outcomes.push(r.outcome()?);
                }
                Reply::ChunkDone { id, outcomes }
            }
            t => return Err(bad(format!("unknown reply tag {t}"))),
        };
        r.end()?;
        Ok(reply)
    }
}

impl Request {
    /// Decodes a body received from the parent.
    pub(crate) fn decode(body: Vec<u8>) -> Result<Request, WireError> {
        let mut r = Reader::new(body);
        let request = match r.u8("a message tag")? {
            10 => Request::Init {
                task: if r.opt("an initializer")? {
                    Some((r.str("a task name")?, r.bytes("an argument")?))
                } else {
                    None
                },
            },
            11 => Request::Run {
                id: r.u64("a task id")?,
                task: r.str("a task name")?,
                arg: r.bytes("an argument")?,
            },
            12 => {
                let id = r.u64("a task id")?;
                let task = r.str("a task name")?;
                let n = r.count("arguments")?;
                let mut args = Vec::with_capacity(n);
                for _ in 0..n {
                    args.push(if r.opt("an argument")? {
                        Some(r.bytes("an argument")?)
                    } else {
                        None
                    });
                }
                Request::RunChunk { id, task, args }
            }
            13 => Request::Exit,
            t => return Err(bad(format!("unknown request tag {t}"))),
        };
        r.end()?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(frame: &Frame) -> Vec<u8> {
        frame.slices(0).iter().flat_map(|s| s.to_vec()).collect()
    }

    fn body(frame: &Frame) -> Vec<u8> {
        let all = flatten(frame);
        assert_eq!(all.len(), frame.len());
        let n = body_len(all[..HEADER].try_into().unwrap());
        assert_eq!(n as usize, all.len() - HEADER);
        all[HEADER..].to_vec()
    }

    #[test]
    fn requests_round_trip_small_and_spliced_payloads() {
        let big = Bytes::new((0..100_000u32).map(|i| i as u8).collect());
        let run = Request::Run {
            id: 7,
            task: "app::square".into(),
            arg: big.clone(),
        };
        match Request::decode(body(&run.frame())).unwrap() {
            Request::Run { id, task, arg } => {
                assert_eq!((id, task.as_str()), (7, "app::square"));
                assert_eq!(&*arg, &*big);
            }
            other => panic!("{other:?}"),
        }
        let chunk = Request::RunChunk {
            id: 1,
            task: "t".into(),
            args: vec![Some(Bytes::new(vec![1, 2])), None, Some(big.clone())],
        };
        match Request::decode(body(&chunk.frame())).unwrap() {
            Request::RunChunk { args, .. } => {
                assert_eq!(args.len(), 3);
                assert_eq!(&*args[0].clone().unwrap(), &[1, 2]);
                assert!(args[1].is_none());
                assert_eq!(args[2].clone().unwrap().len(), big.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_resumes_from_any_offset() {
        let big = Bytes::new(vec![9; 50_000]);
        let frame = Request::Run {
            id: 1,
            task: "x".into(),
            arg: big,
        }
        .frame();
        let all = flatten(&frame);
        for from in [0, 1, 8, 9, 30, 40_000, all.len() - 1] {
            let rest: Vec<u8> = frame.slices(from).iter().flat_map(|s| s.to_vec()).collect();
            assert_eq!(rest, all[from..], "from {from}");
        }
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics_or_allocations() {
        // Every prefix of a valid reply is rejected.
        let reply = Reply::ChunkDone {
            id: 3,
            outcomes: vec![
                Outcome::Returned(Bytes::new(vec![1; 10])),
                Outcome::Panicked {
                    message: "boom".into(),
                    location: Some("a.rs:1:2".into()),
                },
            ],
        };
        let good = body(&reply.frame());
        assert!(Reply::decode(good.clone()).is_ok());
        for cut in 0..good.len() {
            assert!(Reply::decode(good[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        // Lengths far beyond the body, counts far beyond it, bad tags, trailing bytes.
        let mut huge = vec![3];
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.push(0);
        huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(Reply::decode(huge)
            .unwrap_err()
            .0
            .contains("1152921504606846976"));
        let mut many = vec![4];
        many.extend_from_slice(&1u64.to_le_bytes());
        many.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Reply::decode(many).is_err());
        assert!(Reply::decode(vec![99]).is_err());
        let mut trailing = good;
        trailing.push(0);
        assert!(Reply::decode(trailing).is_err());
        let mut not_utf8 = vec![1];
        not_utf8.extend_from_slice(&2u64.to_le_bytes());
        not_utf8.extend_from_slice(&[0xff, 0xfe]);
        not_utf8.extend_from_slice(&1u32.to_le_bytes());
        assert!(Reply::decode(not_utf8).is_err());
    }

    /// A scripted stream: each read is answered by the closure.
    struct Script<F>(F);

    impl<F: FnMut(&mut [u8]) -> Result<Option<usize>, ReadError>> ByteSource for Script<F> {
        fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
            (self.0)(buf)
        }
    }

    /// Frames of `lengths` (bodies of distinct bytes) cut out of one stream by `reader`, the
    /// stream delivered in reads of the sizes `pattern` cycles through (a read also stops at
    /// the end of the buffer it is given, never empty).
    fn cut(reader: &mut FrameReader, lengths: &[usize], pattern: &[usize]) {
        let bodies: Vec<Vec<u8>> = lengths
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
            .collect();
        let mut stream = Vec::new();
        for body in &bodies {
            stream.extend_from_slice(&(body.len() as u64).to_le_bytes());
            stream.extend_from_slice(body);
        }
        let mut at = 0;
        let mut step = 0;
        for (k, want) in bodies.iter().enumerate() {
            let got = loop {
                let read = reader.read_once(&mut Script(|buf: &mut [u8]| {
                    assert!(!buf.is_empty(), "a read into an empty buffer");
                    let n = pattern[step % pattern.len()]
                        .min(buf.len())
                        .min(stream.len() - at);
                    step += 1;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf[..n].copy_from_slice(&stream[at..at + n]);
                    at += n;
                    Ok(Some(n))
                }));
                match read.unwrap() {
                    Some(body) => break body,
                    None => assert!(
                        at < stream.len(),
                        "stuck before frame {k} ({} bytes) with the whole stream read",
                        want.len()
                    ),
                }
            };
            assert_eq!(got.len(), want.len(), "frame {k}");
            assert!(got == *want, "frame {k}: wrong bytes");
        }
        assert_eq!(at, stream.len(), "bytes left unread");
        assert!(reader.buffered().unwrap().is_none());
    }

    #[test]
    fn frames_around_the_read_buffers_size_are_cut_whole_from_any_reads() {
        let r = READ_AHEAD;
        let lengths = [
            0,
            1,
            7,
            r - HEADER - 1,
            r - HEADER,
            3,
            r - HEADER + 1,
            r,
            r + 1,
            0,
            2 * r,
            5,
            300_000,
            2,
            r - 2 * HEADER,
            HEADER,
            r - HEADER,
        ];
        let patterns: [&[usize]; 6] = [
            &[usize::MAX],
            &[1],
            &[7, 8, 9],
            &[r - 1, r + 1, 3],
            &[HEADER, r - HEADER, 1, 100_000],
            &[5, 0, 65_000, 0, 17],
        ];
        for pattern in patterns {
            cut(&mut FrameReader::untrusted(1 << 20), &lengths, pattern);
            cut(&mut FrameReader::trusted(), &lengths, pattern);
        }
    }

    #[test]
    fn a_frame_over_max_message_size_is_refused_before_its_body() {
        let mut reader = FrameReader::untrusted(1000);
        let mut stream = 1001u64.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0; 16]);
        let read = reader.read_once(&mut Script(|buf: &mut [u8]| {
            buf[..stream.len()].copy_from_slice(&stream);
            Ok(Some(stream.len()))
        }));
        assert!(matches!(read, Err(ReadError::Protocol(_))), "{read:?}");
    }
}

//! Reading audit files line by line, plain or gzip, with a bound on line length: the shared
//! reader of `verify`, `query` and the log backend's restart.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// The longest line (one event, without its newline) written or read. Events larger than this
/// lose their bodies when written ([`crate::event::Event::truncate_bodies`]).
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// One line of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RawLine {
    /// A line ending in `\n` (which is not included).
    Complete(Vec<u8>),
    /// The last bytes of the file, with no `\n` after them.
    Torn(Vec<u8>),
    /// A line longer than the bound; its bytes were skipped.
    TooLong {
        /// Its length, as far as it was read.
        len: u64,
    },
}

/// Opens an audit file for reading: gunzipped when its name ends in `.gz`.
pub(crate) fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::with_capacity(
            64 << 10,
            MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(64 << 10, file)))
    }
}

/// Lines of a reader, numbered from 1, each at most `max` bytes.
pub(crate) struct LineReader<R> {
    inner: R,
    max: usize,
    line_no: u64,
    done: bool,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            line_no: 0,
            done: false,
        }
    }

    /// The next line with its number; `None` at the end; an I/O error ends the reader.
    pub(crate) fn next_line(&mut self) -> Option<io::Result<(u64, RawLine)>> {
        if self.done {
            return None;
        }
        match self.read_line() {
            Ok(Some(line)) => {
                self.line_no += 1;
                Some(Ok((self.line_no, line)))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn read_line(&mut self) -> io::Result<Option<RawLine>> {
        let mut buf = Vec::new();
        let mut len: u64 = 0;
        let mut too_long = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                // End of input.
                return Ok(match (len, too_long) {
                    (0, _) => None,
                    (_, true) => Some(RawLine::TooLong { len }),
                    (_, false) => Some(RawLine::Torn(buf)),
                });
            }
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            len += take as u64;
            if !too_long {
                if buf.len() + take > self.max {
                    too_long = true;
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(chunk.get(..take).unwrap_or_default());
                }
            }
            self.inner.consume(if found { take + 1 } else { take });
            if found {
                return Ok(Some(if too_long {
                    RawLine::TooLong { len }
                } else {
                    RawLine::Complete(buf)
                }));
            }
        }
    }
}

/// The end of a plain file, as the writer needs it on restart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    /// Length of the file up to and including its last `\n` (what survives repair).
    pub(crate) complete_len: u64,
    /// The file's length.
    pub(crate) len: u64,
    /// The last complete line, without its `\n`.
    pub(crate) last_line: Option<Vec<u8>>,
}

/// Reads the end of a plain file: where its last complete line ends and what that line is.
/// Reads at most about two line bounds from the end.
pub(crate) fn tail(file: &mut File, max: usize) -> io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    let window = (2 * max as u64 + 2).min(len);
    let start = len - window;
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
    file.by_ref().take(window).read_to_end(&mut buf)?;
    let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
        if start > 0 {
            return Err(line_too_long());
        }
        return Ok(Tail {
            complete_len: 0,
            len,
            last_line: None,
        });
    };
    let before = buf.get(..last_nl).unwrap_or_default();
    let line_start = match before.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => return Err(line_too_long()),
    };
    Ok(Tail {
        complete_len: start + last_nl as u64 + 1,
        len,
        last_line: Some(before.get(line_start..).unwrap_or_default().to_vec()),
    })
}

fn line_too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the last line of the audit file is longer than the line bound",
    )
}

/// The last complete line of a (possibly gzipped) file, read from the start.
pub(crate) fn last_complete_line(path: &Path, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut reader = LineReader::new(open(path)?, max);
    let mut last = None;
    while let Some(line) = reader.next_line() {
        if let (_, RawLine::Complete(bytes)) = line? {
            last = Some(bytes);
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(u64, RawLine)> {
        let mut r = LineReader::new(BufReader::with_capacity(4, input), max);
        std::iter::from_fn(|| r.next_line().map(Result::unwrap)).collect()
    }

    #[test]
    fn splits_lines_and_reports_torn_and_too_long() {
        use RawLine::*;
        assert_eq!(
            lines(b"ab\n\ncdefghij\nxyz", 5),
            vec![
                (1, Complete(b"ab".to_vec())),
                (2, Complete(vec![])),
                (3, TooLong { len: 8 }),
                (4, Torn(b"xyz".to_vec())),
            ]
        );
        assert_eq!(lines(b"", 5), vec![]);
        assert_eq!(lines(b"12345\n", 5), vec![(1, Complete(b"12345".to_vec()))]);
        assert_eq!(lines(b"123456", 5), vec![(1, TooLong { len: 6 })]);
        assert_eq!(
            lines(b"\xff\xfe\n", 5),
            vec![(1, Complete(vec![0xff, 0xfe]))]
        );
    }

    #[test]
    fn tail_finds_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        type Case<'a> = (&'a [u8], u64, Option<&'a [u8]>);
        let cases: &[Case<'_>] = &[
            (b"", 0, None),
            (b"torn", 0, None),
            (b"a\n", 2, Some(b"a")),
            (b"a\nbb\n", 5, Some(b"bb")),
            (b"a\nbb\ntor", 5, Some(b"bb")),
        ];
        for (content, complete_len, last) in cases {
            std::fs::write(&path, content).unwrap();
            let mut f = File::open(&path).unwrap();
            let t = tail(&mut f, 16).unwrap();
            assert_eq!(t.complete_len, *complete_len);
            assert_eq!(t.len, content.len() as u64);
            assert_eq!(t.last_line.as_deref(), *last);
        }
        std::fs::write(&path, [b"x".repeat(100), b"\n".to_vec()].concat()).unwrap();
        assert!(tail(&mut File::open(&path).unwrap(), 16).is_err());
    }
}

//! A Parquet file's footer checked before the Parquet library reads it.
//!
//! The footer is a Thrift struct (compact protocol) whose lists declare
//! their length up front, and polars-parquet reserves memory for that many
//! elements before reading any: a corrupt or hostile footer declaring
//! billions of row groups aborts the process on a failed allocation (found
//! by the `score_input` fuzz target), which no error handling can catch.
//! Every element takes at least one byte of the footer, so this walk of the
//! footer's Thrift structure refuses any list, map or string longer than the
//! bytes left, any unknown type and any nesting deeper than real files use;
//! a footer that passes can make the library reserve no more than a small
//! multiple of its own size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Deeper than any real Parquet schema's Thrift nesting.
const MAX_DEPTH: usize = 64;

/// Checks the footer of the Parquet file `file` (whose length is `len`).
pub fn check(file: &mut File, len: u64) -> Result<(), String> {
    if len < 12 {
        return Err(format!("{len} bytes is too short for a Parquet file"));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8)).and_then(|_| file.read_exact(&mut tail)).map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Err("the file does not end with Parquet's magic bytes".into());
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len > len - 12 {
        return Err(format!("the footer declares {footer_len} bytes in a file of {len}"));
    }
    let mut footer = vec![0u8; footer_len as usize];
    file.seek(SeekFrom::Start(len - 8 - footer_len))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut walk = Walk { bytes: &footer, at: 0 };
    walk.value(STRUCT, 0).map_err(|e| format!("the footer is malformed: {e}"))
}

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

/// A cursor over Thrift compact-protocol bytes.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("it ends in the middle of a value")?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.left() {
            return Err(format!("a value of {n} bytes with {} left", self.left()));
        }
        self.at += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a variable-length integer runs past ten bytes".into())
    }

    /// A count of `min_bytes`-byte elements that must fit in what is left.
    fn count(&mut self, declared: u64, min_bytes: usize) -> Result<usize, String> {
        let fits = (self.left() / min_bytes.max(1)) as u64;
        if declared > fits {
            return Err(format!("a collection of {declared} elements with {} bytes left", self.left()));
        }
        Ok(declared as usize)
    }

    fn value(&mut self, ty: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested deeper than any Parquet footer".into());
        }
        match ty {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip(8),
            BINARY => {
                let n = self.varint()?;
                let n = self.count(n, 1)?;
                self.skip(n)
            }
            LIST | SET => {
                let header = self.byte()?;
                let declared = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let element = header & 0x0f;
                let n = self.count(declared, 1)?;
                for _ in 0..n {
                    // Booleans in a list take a byte each.
                    if matches!(element, BOOL_TRUE | BOOL_FALSE) {
                        self.skip(1)?;
                    } else {
                        self.value(element, depth + 1)?;
                    }
                }
                Ok(())
            }
            MAP => {
                let declared = self.varint()?;
                if declared == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                let n = self.count(declared, 2)?;
                for _ in 0..n {
                    self.value(types >> 4, depth + 1)?;
                    self.value(types & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => loop {
                let header = self.byte()?;
                if header == 0 {
                    return Ok(());
                }
                if header >> 4 == 0 {
                    // A long-form field id follows (zigzag i16).
                    self.varint()?;
                }
                self.value(header & 0x0f, depth + 1)?;
            },
            other => Err(format!("unknown Thrift type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> Result<(), String> {
        Walk { bytes, at: 0 }.value(STRUCT, 0)
    }

    #[test]
    fn a_real_footer_passes_and_a_list_longer_than_the_footer_is_refused() {
        // field 1 (i32) = 1; field 2, a list of 2 i32: 1, 2; stop.
        assert_eq!(walk(&[0x15, 0x02, 0x19, 0x25, 0x02, 0x04, 0x00]), Ok(()));
        // The same list declaring 2^35 elements in its long form.
        let huge = [0x15, 0x02, 0x19, 0xf5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x02, 0x04, 0x00];
        assert!(walk(&huge).unwrap_err().contains("elements"));
        assert!(walk(&[0x18, 0xff, 0x01, b'a']).unwrap_err().contains("255 elements"));
        assert!(walk(&[0x1d]).is_err(), "an unknown type");
        assert!(walk(&[0x15]).is_err(), "a value cut short");
    }
}

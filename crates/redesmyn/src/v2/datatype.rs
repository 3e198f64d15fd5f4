//! Tensor datatypes of the protocol, by their wire names.

use std::fmt;

use crate::schema::Numeric;

/// A tensor element type. `F16` and `BF16` are recognised so a request that
/// uses them gets a clear "not supported" rather than "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datatype {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    Bf16,
    F32,
    F64,
    Bytes,
}

/// Every wire name, for error messages.
pub const NAMES: &str = "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64, BYTES";

impl Datatype {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => Datatype::Bool,
            "UINT8" => Datatype::U8,
            "UINT16" => Datatype::U16,
            "UINT32" => Datatype::U32,
            "UINT64" => Datatype::U64,
            "INT8" => Datatype::I8,
            "INT16" => Datatype::I16,
            "INT32" => Datatype::I32,
            "INT64" => Datatype::I64,
            "FP16" => Datatype::F16,
            "BF16" => Datatype::Bf16,
            "FP32" => Datatype::F32,
            "FP64" => Datatype::F64,
            "BYTES" => Datatype::Bytes,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::U8 => "UINT8",
            Datatype::U16 => "UINT16",
            Datatype::U32 => "UINT32",
            Datatype::U64 => "UINT64",
            Datatype::I8 => "INT8",
            Datatype::I16 => "INT16",
            Datatype::I32 => "INT32",
            Datatype::I64 => "INT64",
            Datatype::F16 => "FP16",
            Datatype::Bf16 => "BF16",
            Datatype::F32 => "FP32",
            Datatype::F64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// Bytes per element in the raw layout; `None` for BYTES, whose
    /// elements each carry a 4-byte little-endian length.
    pub fn size(self) -> Option<usize> {
        match self {
            Datatype::Bool | Datatype::U8 | Datatype::I8 => Some(1),
            Datatype::U16 | Datatype::I16 | Datatype::F16 | Datatype::Bf16 => Some(2),
            Datatype::U32 | Datatype::I32 | Datatype::F32 => Some(4),
            Datatype::U64 | Datatype::I64 | Datatype::F64 => Some(8),
            Datatype::Bytes => None,
        }
    }

    /// Half-precision types have no column type here.
    pub fn is_supported(self) -> bool {
        !matches!(self, Datatype::F16 | Datatype::Bf16)
    }

    pub fn of_numeric(n: Numeric) -> Self {
        match n {
            Numeric::I8 => Datatype::I8,
            Numeric::I16 => Datatype::I16,
            Numeric::I32 => Datatype::I32,
            Numeric::I64 => Datatype::I64,
            Numeric::U8 => Datatype::U8,
            Numeric::U16 => Datatype::U16,
            Numeric::U32 => Datatype::U32,
            Numeric::U64 => Datatype::U64,
            Numeric::F32 => Datatype::F32,
            Numeric::F64 => Datatype::F64,
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sizes() {
        for name in NAMES.split(", ").chain(["FP16", "BF16"]) {
            let dt = Datatype::parse(name).expect(name);
            assert_eq!(dt.as_str(), name);
        }
        assert_eq!(Datatype::parse("FLOAT32"), None);
        assert_eq!(Datatype::parse("fp32"), None);
        assert_eq!(Datatype::F64.size(), Some(8));
        assert_eq!(Datatype::Bool.size(), Some(1));
        assert_eq!(Datatype::Bytes.size(), None);
        assert!(!Datatype::F16.is_supported());
    }
}

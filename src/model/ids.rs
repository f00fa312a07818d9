//! Validated trace and span ids. Wire data is checked once, here; everything after works
//! with ids that are known to have the right length and not be all zero.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} has {len} bytes, expected {expected}")]
    WrongLength {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{what} is all zero bytes, which OTLP defines as invalid")]
    AllZero { what: &'static str },
    #[error("{what} is not valid hex")]
    NotHex { what: &'static str },
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

macro_rules! id_type {
    ($name:ident, $len:expr, $what:expr) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            pub const WHAT: &'static str = $what;

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The id as lowercase hex text written into `buffer`, without allocating.
            pub fn hex_in<'b>(&self, buffer: &'b mut [u8; $len * 2]) -> &'b str {
                for (pair, byte) in buffer.chunks_exact_mut(2).zip(self.0) {
                    pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
                    pair[1] = HEX_DIGITS[usize::from(byte & 0xf)];
                }
                // Only ASCII digits were written.
                std::str::from_utf8(buffer).unwrap_or_default()
            }

            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let bytes = hex::decode(text).map_err(|_| IdError::NotHex { what: $what })?;
                Self::try_from(bytes.as_slice())
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = IdError;

            fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
                if bytes.is_empty() {
                    return Err(IdError::Empty { what: $what });
                }
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::WrongLength {
                    what: $what,
                    len: bytes.len(),
                    expected: $len,
                })?;
                if array == [0u8; $len] {
                    return Err(IdError::AllZero { what: $what });
                }
                Ok(Self(array))
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

id_type!(TraceId, 16, "trace_id");
id_type!(SpanId, 8, "span_id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(
            TraceId::try_from(&[][..]),
            Err(IdError::Empty { what: "trace_id" })
        );
        assert!(matches!(
            TraceId::try_from(&[1u8; 8][..]),
            Err(IdError::WrongLength { len: 8, .. })
        ));
        assert!(matches!(
            SpanId::try_from(&[0u8; 8][..]),
            Err(IdError::AllZero { .. })
        ));
        assert!(matches!(
            SpanId::from_hex("zz"),
            Err(IdError::NotHex { .. })
        ));
    }

    #[test]
    fn hex_round_trip() {
        let id = TraceId::try_from(&[7u8; 16][..]).expect("valid id");
        assert_eq!(TraceId::from_hex(&id.to_hex()), Ok(id));
        let bytes: Vec<u8> = (1..=16u8).map(|b| b.wrapping_mul(37)).collect();
        let id = TraceId::try_from(&bytes[..]).expect("valid id");
        assert_eq!(id.hex_in(&mut [0; 32]), hex::encode(&bytes));
    }
}

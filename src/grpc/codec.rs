//! codec: prost's codec, except that a request that cannot be decoded (bytes
//! that are not the message: invalid UTF-8, a truncated field, a wrong wire
//! type) is the caller's error, `INVALID_ARGUMENT`, not tonic's `INTERNAL`
//! — which Portcullis keeps for its own bugs. Used by every generated
//! service and client (`build.rs`, `codec_path`).

use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with decoding errors answered `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = InvalidIsInvalid<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        InvalidIsInvalid(self.0.decoder())
    }
}

/// The decoder of [`Codec`].
#[derive(Debug)]
pub struct InvalidIsInvalid<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for InvalidIsInvalid<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            // On the server, a request that does not decode is the caller's
            // error; a client keeps tonic's code for a bad response.
            if cfg!(feature = "server") && s.code() == Code::Internal {
                invalid_request(&s)
            } else {
                s
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[cfg(feature = "server")]
fn invalid_request(s: &Status) -> Status {
    Status::from(crate::error::Error::invalid(
        "request",
        format!("not a valid protobuf message: {}", s.message()),
    ))
}

#[cfg(not(feature = "server"))]
fn invalid_request(s: &Status) -> Status {
    s.clone()
}

//! The dispatch table's shape: each handler file declares one [`Api`] (its key, the versions
//! it honours and how it runs); the broker's table is the list of them
//! (`crate::handlers::APIS`). The connection checks versions against the table, ApiVersions
//! advertises exactly the table, and the connection runs each request through its entry, so
//! a version can't be advertised without a handler, nor a handler run at a version it
//! doesn't declare.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseKind,
};

use super::connection::BrokerInfo;
use super::error_code;
use super::fetch_response::Piece;

/// A future on this shard (handlers' futures hold shard-local state, so they aren't `Send`).
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// An API this broker serves.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    pub run: Run,
}

impl Api {
    pub const fn new(key: ApiKey, min_version: i16, max_version: i16, run: Run) -> Api {
        Api {
            key,
            min_version,
            max_version,
            run,
        }
    }

    pub fn supports(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }
}

/// How a handler runs on its connection.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    /// Alone: once every earlier response on the connection has been sent, as Kafka runs a
    /// connection's requests one at a time.
    Alone(fn(Call) -> LocalBoxFuture<Handled>),
    /// In two phases: the connection awaits the first before reading its next request, and
    /// the second ([`Finishing`]) completes while later requests are read and run; responses
    /// still leave in request order. Produce, whose first phase assigns offsets.
    Pipelined(fn(Call) -> LocalBoxFuture<Finishing>),
}

/// A decoded request on its way to its handler.
#[derive(Debug)]
pub struct Call {
    pub broker: Rc<BrokerInfo>,
    pub header: RequestHeader,
    pub peer: SocketAddr,
    pub version: i16,
    pub body: RequestKind,
}

/// What a handler produced: the response body, or none at all (acks=0 Produce).
pub type Handled = Result<Option<ResponseBody>, HandlerError>;

/// A response body for the connection to frame.
#[derive(Debug)]
pub enum ResponseBody {
    /// A message for the codec to encode.
    Message(Box<ResponseKind>),
    /// Already encoded, with records still in segment files (Fetch).
    Pieces(Vec<Piece>),
}

impl From<ResponseKind> for ResponseBody {
    fn from(response: ResponseKind) -> Self {
        ResponseBody::Message(Box::new(response))
    }
}

/// Why a handler closes the connection instead of answering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The table sent a request to the wrong handler (a bug; the client is not at fault, but
    /// there is no answer to give).
    #[error("request dispatched to the wrong handler")]
    WrongBody,
    /// An acks=0 produce request failed: closing is the only way to tell a client that expects
    /// no answer to refresh its metadata (Kafka does the same).
    #[error("an acks=0 produce request failed with error {0}; closing so the client notices")]
    FailedWithoutAcks(i16),
}

/// The second phase of a pipelined request.
pub struct Finishing(LocalBoxFuture<Handled>);

impl Finishing {
    pub fn new(finish: impl Future<Output = Handled> + 'static) -> Finishing {
        Finishing(Box::pin(finish))
    }

    /// A request that failed in its first phase.
    pub fn failed(error: HandlerError) -> Finishing {
        Finishing::new(std::future::ready(Err(error)))
    }

    pub fn into_future(self) -> LocalBoxFuture<Handled> {
        self.0
    }
}

impl std::fmt::Debug for Finishing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finishing")
    }
}

/// The broker's table: every API it serves, each once.
#[derive(Debug, Clone, Copy)]
pub struct Apis(pub &'static [Api]);

impl Apis {
    /// The entry for `key`, if the API is served.
    pub fn get(&self, key: ApiKey) -> Option<&'static Api> {
        self.0.iter().find(|api| api.key == key)
    }

    /// The entry for `key` if it is served at `version`.
    pub fn at_version(&self, key: ApiKey, version: i16) -> Option<&'static Api> {
        self.get(key).filter(|api| api.supports(version))
    }

    /// ApiVersions' answer: every API in the table with its version range.
    pub fn api_versions(&self) -> ApiVersionsResponse {
        let mut response = ApiVersionsResponse::default();
        response.error_code = error_code::NONE;
        response.api_keys = self
            .0
            .iter()
            .map(|api| {
                let mut version = ApiVersion::default();
                version.api_key = api.key as i16;
                version.min_version = api.min_version;
                version.max_version = api.max_version;
                version
            })
            .collect();
        response
    }

    /// The answer to ApiVersions at a version we don't serve (sent as v0, per KIP-511), so
    /// the client can retry with one we do.
    pub fn api_versions_unsupported(&self) -> ApiVersionsResponse {
        let mut response = self.api_versions();
        response.error_code = error_code::UNSUPPORTED_VERSION;
        response
    }
}

/// Declares a handler file's [`Api`] for a handler that runs alone and answers with a codec
/// message: `api!(ListOffsets, 1..=7, |call, request| handle(request, call.version).await);`
/// gives `pub const API`, which unpacks the request body of that API and wraps the response.
#[macro_export]
macro_rules! api {
    ($kind:ident, $min:literal ..= $max:literal, |$call:ident, $request:ident| $answer:expr) => {
        pub const API: $crate::kafka::dispatch::Api = $crate::kafka::dispatch::Api::new(
            ::kafka_protocol::messages::ApiKey::$kind,
            $min,
            $max,
            $crate::kafka::dispatch::Run::Alone(|$call| {
                ::std::boxed::Box::pin(async move {
                    let ::kafka_protocol::messages::RequestKind::$kind($request) = $call.body
                    else {
                        return Err($crate::kafka::dispatch::HandlerError::WrongBody);
                    };
                    let response = $answer;
                    Ok(Some(
                        ::kafka_protocol::messages::ResponseKind::$kind(response).into(),
                    ))
                })
            }),
        );
    };
}

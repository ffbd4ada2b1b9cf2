//! The hooks of microgateway's own contract (`microgateway.plugin.v1.Plugin`): each
//! builds a typed client on this worker's channel to the plugin (see `lanes`) and
//! converts with [`convert`].

use super::{RemotePlugin, authcache, convert};
use crate::plugin::proto::plugin_client::PluginClient;
use crate::plugin::{
    BodyMutations, ChunkAction, ChunkView, CompletedExchange, Decision, HookFuture, HookType,
    MessageAction, MessageView, RequestView, ResponseMutations, ResponseView,
};
use bytes::Bytes;

type Client = PluginClient<tonic::transport::Channel>;

/// `PreAuth`, `Auth` or `PostAuth`; auth results are cached by credentials for their TTL.
pub(super) fn on_request<'a>(
    p: &'a RemotePlugin,
    stage: HookType,
    request: &'a RequestView<'a>,
) -> HookFuture<'a, Decision> {
    let cache_key = (stage == HookType::Auth)
        .then(|| authcache::AuthCache::key(request))
        .flatten();
    if let Some(auth) = cache_key.as_ref().and_then(|k| p.auth_cache.get(k)) {
        return HookFuture::ok(Decision::Continue(crate::plugin::Mutations {
            auth: Some(auth),
            ..Default::default()
        }));
    }
    let message = convert::request_to_pb(request, p.manifest.request_body);
    let cache = p.auth_cache.clone();
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        let response = match stage {
            HookType::PreAuth => client.pre_auth(message).await,
            HookType::Auth => client.auth(message).await,
            _ => client.post_auth(message).await,
        };
        let decision =
            convert::decision_from_pb(response.map_err(convert::status_error)?.into_inner())?;
        if let (Some(key), Decision::Continue(m)) = (cache_key, &decision)
            && let Some(auth) = &m.auth
        {
            cache.put(key, auth);
        }
        Ok(decision)
    })
}

/// `OnResponseHeaders`.
pub(super) fn on_response_headers<'a>(
    p: &'a RemotePlugin,
    response: &'a ResponseView<'a>,
) -> HookFuture<'a, ResponseMutations> {
    let message = convert::response_headers_to_pb(response);
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        let r = client
            .on_response_headers(message)
            .await
            .map_err(convert::status_error)?;
        convert::response_mutations_from_pb(r.into_inner())
    })
}

/// `OnResponseBody` with the buffered body.
pub(super) fn on_response_body<'a>(
    p: &'a RemotePlugin,
    response: &'a ResponseView<'a>,
    body: &'a Bytes,
) -> HookFuture<'a, BodyMutations> {
    let message = convert::response_body_to_pb(response, body);
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        let r = client
            .on_response_body(message)
            .await
            .map_err(convert::status_error)?;
        convert::body_mutations_from_pb(r.into_inner())
    })
}

/// `OnResponseChunk`.
pub(super) fn on_response_chunk<'a>(
    p: &'a RemotePlugin,
    chunk: &'a ChunkView<'a>,
) -> HookFuture<'a, ChunkAction> {
    let message = convert::chunk_to_pb(chunk);
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        let r = client
            .on_response_chunk(message)
            .await
            .map_err(convert::status_error)?;
        Ok(convert::chunk_action_from_pb(r.into_inner()))
    })
}

/// `OnWebsocketMessage`.
pub(super) fn on_websocket_message<'a>(
    p: &'a RemotePlugin,
    message: &'a MessageView<'a>,
) -> HookFuture<'a, MessageAction> {
    let request = convert::message_to_pb(message);
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        let r = client
            .on_websocket_message(request)
            .await
            .map_err(convert::status_error)?;
        Ok(convert::message_action_from_pb(r.into_inner()))
    })
}

/// `OnStreamComplete`.
pub(super) fn on_stream_complete<'a>(
    p: &'a RemotePlugin,
    done: &'a CompletedExchange,
) -> HookFuture<'a, ()> {
    let message = convert::complete_to_pb(done);
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        client
            .on_stream_complete(message)
            .await
            .map_err(convert::status_error)
            .map(drop)
    })
}

/// `Collect`.
pub(super) fn collect<'a>(
    p: &'a RemotePlugin,
    record: &'a CompletedExchange,
) -> HookFuture<'a, ()> {
    let message = convert::collect_to_pb(record);
    HookFuture::pending(async move {
        let mut client = Client::new(p.channel().await?);
        client
            .collect(message)
            .await
            .map_err(convert::status_error)
            .map(drop)
    })
}

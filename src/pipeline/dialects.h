// The APIs clients speak (OpenAI chat and completions, Anthropic Messages, OpenAI Responses,
// embeddings) and the wire each backend speaks for a call. Routing always reads an OpenAI chat
// request (the pivot): a Messages or Responses request is translated to one first. Then, per
// backend, the routed chat request becomes the call that backend's provider expects (path, auth
// headers, fields, API shape), and its answer comes back to the client in the client's API, with
// the chat form of it fed to the Exchange for usage, time to first token and the cache.
// Transport-neutral: the gateway moves the bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "openai/errors.h"
#include "openai/responses_api.h"
#include "pipeline/pipeline.h"

namespace semrouter::openai::anthropic {
class StreamToChat;
class StreamFromChat;
} // namespace semrouter::openai::anthropic
namespace semrouter::pipeline {

enum class Api { Chat, Completions, Messages, Responses, Embeddings };
std::string_view api_name(Api api);

// A client's request as routing reads it.
struct ClientRequest {
  Api api = Api::Chat;
  std::string_view original; // the client's body (valid for the request's life)
  std::string pivot;         // Messages / Responses: the chat request routing reads
  // Responses: the first feature a chat translation cannot carry ("" : none). Only a backend
  // that speaks the Responses API natively can take such a request.
  std::string unsupported;
  // Responses: what the Response echoes of the request (read with the pivot, once).
  openai::responses_api::RequestEcho echo;
  std::string_view routing_body() const { return pivot.empty() ? original : pivot; }
  openai::RequestKind kind() const {
    return api == Api::Completions ? openai::RequestKind::Completions
                                   : openai::RequestKind::ChatCompletions;
  }
};

// Reads the client's body; false and `error` (400, in the client's API) when it cannot be read.
bool read_client_request(Api api, std::string_view body, ClientRequest& out,
                         openai::ApiError& error);

// Embeddings are not routed: the request names a configured model. Forward, or a Reply with a
// 400/404 error.
RouteOutcome route_embeddings(const Snapshot& snapshot, std::string_view body);

// The API a backend answers in (it reads as an Api), with what translating the answer back into
// the client's API needs of the client's request. It travels in UpstreamCall::wire to the
// AnswerCodec, so that whoever builds a codec from `call.wire` passes both.
struct Wire {
  Wire(Api answers_in = Api::Chat, openai::responses_api::RequestEcho echoed = {})
      : api(answers_in), echo(std::move(echoed)) {}
  operator Api() const { return api; }

  Api api;
  // A Responses client whose answer is translated from chat: what its Response echoes.
  openai::responses_api::RequestEcho echo;
};

// One upstream call as the backend's provider wants it.
struct UpstreamCall {
  std::string path;                                         // with the query
  std::vector<std::pair<std::string, std::string>> headers; // the provider's auth and versions
  std::string body;
  Wire wire = Api::Chat; // the API the backend answers in
};

// Builds the call to `backend` for a routed request. `client_auth`: the client's own credential
// headers, passed on only when the backend has no key of its own and the router checks no keys.
// False and `error` (400) when this backend cannot take the request (e.g. a hosted Responses
// tool on a backend without the Responses API).
struct ClientCredentials {
  std::string_view authorization; // "Authorization" as the client sent it
  std::string_view x_api_key;
  bool router_checks_keys = false; // the client's key is the router's: never forwarded
};
bool build_upstream_call(const config::BackendConfig& backend, const config::ModelConfig& model,
                         const ClientRequest& request, const RouteOutcome& out,
                         std::string_view query, const ClientCredentials& credentials,
                         UpstreamCall& call, openai::ApiError& error);

// Whether a chat request asks for the usage chunk of its stream (stream_options.include_usage).
bool wants_stream_usage(std::string_view chat_body);

// An error the router makes, in the client's API shape.
std::string error_body_for(Api client, const openai::ApiError& e);
// The event that ends a stream broken off upstream, in the client's API.
std::string stream_error_event(Api client, const openai::ApiError& e);
// A reply routing made (an error, a blocked answer, a cache hit: all OpenAI-shaped, SSE when
// `event_stream`) in the client's API shape. `echo`: a Responses client's request parameters
// (ClientRequest::echo) that the Response repeats.
std::string reply_for(Api client, int status, std::string_view body, bool event_stream,
                      const openai::responses_api::RequestEcho& echo = {});

// The answer of one call, from the backend's wire to the client's API. `pivot` receives the chat
// form (for the Exchange); when the wire already is chat, pivot is the upstream bytes themselves
// and nothing is copied (check pivot_is_upstream()).
class AnswerCodec {
public:
  // `client_wants_usage`: a chat client asked for the usage chunk (stream_options.include_usage);
  // the accounting gets it either way. `wire.echo`: what a Responses answer echoes of the
  // client's request.
  AnswerCodec(Api client, const Wire& wire, bool client_wants_usage = true);
  ~AnswerCodec();
  AnswerCodec(const AnswerCodec&) = delete;
  AnswerCodec& operator=(const AnswerCodec&) = delete;

  // The client gets the upstream's bytes unchanged.
  bool passthrough() const { return client_ == wire_; }
  // The Exchange can read the upstream's bytes as they are (the wire is chat or completions).
  bool pivot_is_upstream() const;

  // A whole body with its status: the client's body; the chat form into `pivot` (when
  // !pivot_is_upstream() and the status is 200).
  std::string body(int status, std::string_view upstream, std::string& pivot);
  // A piece of a stream: bytes for the client into `to_client` (appended), the chat form into
  // `pivot` (appended; when !pivot_is_upstream()).
  void stream(std::string_view piece, std::string& to_client, std::string& pivot);
  // The upstream stream ended: whatever closes the client's stream.
  void finish(std::string& to_client, std::string& pivot);

private:
  Api client_, wire_;
  openai::responses_api::RequestEcho echo_;
  std::unique_ptr<openai::anthropic::StreamToChat> from_anthropic_;
  std::unique_ptr<openai::responses_api::StreamToChat> from_responses_;
  std::unique_ptr<openai::anthropic::StreamFromChat> to_anthropic_;
  std::unique_ptr<openai::responses_api::StreamFromChat> to_responses_;
  // A chat client's own stream from an Anthropic backend, without the usage chunk it did not ask
  // for (null: the client reads the pivot).
  std::unique_ptr<openai::anthropic::StreamToChat> client_chat_;
  std::string scratch_;
};

} // namespace semrouter::pipeline

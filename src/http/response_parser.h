#pragma once
// Incremental HTTP/1.1 response parser for the load client.
//
// It keeps state, never bytes: a response split across any number of reads needs no buffering, which is what
// lets a worker read every connection into one shared buffer. It handles status lines with or without a
// reason, bare-LF line ends, Content-Length (repeated identical values allowed), chunked bodies with
// extensions and trailers, bodies delimited by connection close, 1xx informational responses (skipped), and
// responses without a body (HEAD, 204, 304). Header and body bytes are copied out only when a capture string
// is set (scripts).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace meridian::http {

class ResponseParser {
 public:
  enum class State : uint8_t {
    kVersion,
    kVersionMinor,
    kStatusSpace,
    kStatusCode,
    kAfterCode,
    kReason,
    kStatusLf,
    kHeaderStart,
    kHeaderName,
    kHeaderValueOws,
    kHeaderValue,
    kHeaderLf,
    kHeadersEndLf,
    kBodyIdentity,
    kBodyUntilClose,
    kChunkSize,
    kChunkExtension,
    kChunkSizeLf,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kTrailerStart,
    kTrailer,
    kTrailerLf,
    kTrailersEndLf,
    kComplete,
    kError,
  };

  static constexpr uint32_t kMaxHeaderBytes = 64 * 1024;

  // Prepares for the next response. `no_body` is set for responses to HEAD requests.
  void Reset(bool no_body = false);

  // Frames a message body only (no start line or header section): chunked, or `length` bytes. The target
  // server uses this for request bodies so that both directions share one chunked decoder.
  void BeginBody(bool chunked, uint64_t length);

  // Consumes bytes up to the end of the current response (or the error). Returns the number consumed; bytes
  // after a complete response belong to the next one.
  size_t Feed(const char* data, size_t len);
  size_t Feed(std::string_view s) { return Feed(s.data(), s.size()); }

  // The peer closed the connection: completes a body delimited by close, otherwise an error (truncated).
  void FeedEof();

  bool complete() const { return state_ == State::kComplete; }
  bool failed() const { return state_ == State::kError; }
  bool headers_done() const { return state_ >= State::kBodyIdentity; }
  // True once the status line of the final (non-1xx) response began; false while nothing or only 1xx arrived.
  bool started() const { return started_; }
  State state() const { return state_; }
  const char* error() const { return error_; }

  int status() const { return status_; }
  int http_minor() const { return minor_; }
  bool keep_alive() const { return keep_alive_; }
  bool chunked() const { return chunked_; }
  uint64_t body_bytes() const { return body_bytes_; }
  // Declared Content-Length, or -1 when absent.
  int64_t content_length() const { return has_length_ ? static_cast<int64_t>(content_length_) : -1; }
  uint32_t informational_responses() const { return informational_; }

  // Optional copies for callers that need the header section (status line and fields, including trailers) or
  // the body (at most `limit` bytes; the rest is counted but dropped). nullptr disables.
  void CaptureHeaders(std::string* out) { header_capture_ = out; }
  void CaptureBody(std::string* out, size_t limit) {
    body_capture_ = out;
    body_limit_ = limit;
  }

 private:
  enum class Field : uint8_t { kOther, kContentLength, kTransferEncoding, kConnection };

  size_t Fail(const char* why, size_t at);
  void EndHeaderName();
  bool EndToken();  // a comma-separated value token ended; false on invalid Content-Length
  bool EndHeaderValue();
  bool HeadersComplete();  // decides the body framing; false on conflicting framing
  void AppendBody(const char* p, size_t n);

  State state_ = State::kVersion;
  const char* error_ = nullptr;
  bool no_body_ = false;
  bool started_ = false;
  bool keep_alive_ = true;
  bool chunked_ = false;
  bool has_length_ = false;
  bool has_te_ = false;
  bool te_last_chunked_ = false;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool length_pending_ = false;  // digits seen in the current Content-Length token
  Field field_ = Field::kOther;
  uint8_t version_pos_ = 0;
  uint8_t code_digits_ = 0;
  uint8_t name_len_ = 0;
  uint8_t token_len_ = 0;
  uint8_t chunk_digits_ = 0;
  int minor_ = 1;
  int status_ = 0;
  uint32_t header_bytes_ = 0;
  uint32_t informational_ = 0;
  uint64_t content_length_ = 0;
  uint64_t pending_length_ = 0;  // Content-Length value being read
  uint64_t remaining_ = 0;       // body or chunk bytes left
  uint64_t body_bytes_ = 0;
  char name_[24];   // lower-cased header name, truncated (only short names matter)
  char token_[16];  // lower-cased current value token, truncated
  std::string* header_capture_ = nullptr;
  std::string* body_capture_ = nullptr;
  size_t body_limit_ = 0;
};

}  // namespace meridian::http

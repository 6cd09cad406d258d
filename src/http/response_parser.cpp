#include "http/response_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/hex.h"
#include "http/syntax.h"

namespace meridian::http {
namespace {

constexpr char kVersionPrefix[] = "HTTP/1.";
constexpr int kVersionPrefixLen = 7;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// The index of the first byte in [from, len) that ends a field value or may not appear in one: CR, LF,
// another control character except HTAB, or DEL; `len` when there is none. Eight bytes at a time: a word with
// no byte below 0x20 and no 0x7f is skipped whole (exact "has a byte less than n" test for n <= 0x80).
size_t ScanFieldText(const char* data, size_t from, size_t len) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  size_t j = from;
  while (true) {
    while (j + 8 <= len) {
      uint64_t x;
      std::memcpy(&x, data + j, 8);
      const uint64_t below_space = (x - kOnes * 0x20) & ~x & kHigh;
      const uint64_t y = x ^ (kOnes * 0x7f);
      const uint64_t del = (y - kOnes) & ~y & kHigh;
      if ((below_space | del) != 0) break;
      j += 8;
    }
    // Byte by byte through the word that stopped the fast loop (or the tail).
    const size_t stop = std::min(len, j + 8);
    for (; j < stop; ++j) {
      const auto u = static_cast<unsigned char>(data[j]);
      if ((u < 0x20 && u != '\t') || u == 0x7f) return j;
    }
    if (j >= len) return len;
  }
}

}  // namespace

void ResponseParser::Reset(bool no_body) {
  std::string* hc = header_capture_;
  std::string* bc = body_capture_;
  const size_t limit = body_limit_;
  *this = ResponseParser();
  no_body_ = no_body;
  header_capture_ = hc;
  body_capture_ = bc;
  body_limit_ = limit;
}

void ResponseParser::BeginBody(bool chunked, uint64_t length) {
  Reset(false);
  started_ = true;
  status_ = 200;
  chunked_ = chunked;
  if (chunked) {
    state_ = State::kChunkSize;
  } else {
    remaining_ = length;
    state_ = length ? State::kBodyIdentity : State::kComplete;
  }
}

size_t ResponseParser::Fail(const char* why, size_t at) {
  state_ = State::kError;
  error_ = why;
  return at;
}

void ResponseParser::EndHeaderName() {
  field_ = Field::kOther;
  const std::string_view name(name_, name_len_ <= sizeof name_ ? name_len_ : 0);
  if (name == "content-length") {
    field_ = Field::kContentLength;
    pending_length_ = 0;
    length_pending_ = false;
  } else if (name == "transfer-encoding") {
    field_ = Field::kTransferEncoding;
    has_te_ = true;
    te_last_chunked_ = false;
  } else if (name == "connection") {
    field_ = Field::kConnection;
  }
  token_len_ = 0;
}

bool ResponseParser::EndToken() {
  const std::string_view token(token_, std::min<size_t>(token_len_, sizeof token_));
  switch (field_) {
    case Field::kContentLength:
      if (!length_pending_) return token_len_ == 0;  // "5, , 5" tolerated as empty list elements
      if (has_length_ && content_length_ != pending_length_) return false;
      content_length_ = pending_length_;
      has_length_ = true;
      pending_length_ = 0;
      length_pending_ = false;
      break;
    case Field::kTransferEncoding:
      if (token_len_ > 0) te_last_chunked_ = token_len_ == 7 && token == "chunked";
      break;
    case Field::kConnection:
      if (token_len_ == 5 && token == "close") conn_close_ = true;
      if (token_len_ == 10 && token == "keep-alive") conn_keep_alive_ = true;
      break;
    case Field::kOther:
      break;
  }
  token_len_ = 0;
  return true;
}

bool ResponseParser::EndHeaderValue() {
  if (!EndToken()) return false;
  // A Content-Length field must carry a value.
  return field_ != Field::kContentLength || has_length_;
}

bool ResponseParser::HeadersComplete() {
  keep_alive_ = minor_ >= 1 ? !conn_close_ : conn_keep_alive_;
  if (status_ == 101) keep_alive_ = false;  // the protocol switch is not followed
  if (no_body_ || status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200)) {
    return true;
  }
  if (has_te_) {
    // Transfer-Encoding overrides Content-Length; a message carrying both must not be reused (RFC 9112 §6.3).
    if (has_length_) keep_alive_ = false;
    if (te_last_chunked_) {
      chunked_ = true;
      chunk_digits_ = 0;
      remaining_ = 0;
      state_ = State::kChunkSize;
    } else {
      keep_alive_ = false;
      state_ = State::kBodyUntilClose;
    }
    return true;
  }
  if (has_length_) {
    remaining_ = content_length_;
    state_ = remaining_ ? State::kBodyIdentity : State::kComplete;
    return true;
  }
  keep_alive_ = false;
  state_ = State::kBodyUntilClose;
  return true;
}

void ResponseParser::AppendBody(const char* p, size_t n) {
  body_bytes_ += n;
  if (body_capture_ && body_capture_->size() < body_limit_) {
    body_capture_->append(p, std::min(n, body_limit_ - body_capture_->size()));
  }
}

namespace {
bool InHeaderSection(ResponseParser::State s) {
  using S = ResponseParser::State;
  return s < S::kBodyIdentity || (s >= S::kTrailerStart && s <= S::kTrailersEndLf);
}
}  // namespace

size_t ResponseParser::Feed(const char* data, size_t len) {
  size_t i = 0;
  // Header bytes of this call not yet copied to header_capture_ start here (npos: not in a header section).
  size_t capture_from = InHeaderSection(state_) ? 0 : std::string::npos;
  // Where this call's bytes of the current header (or trailer) section began, for the size bound.
  size_t header_from = 0;
  auto flush_capture = [&](size_t to) {
    if (header_capture_ && capture_from != std::string::npos && to > capture_from) {
      header_capture_->append(data + capture_from, to - capture_from);
    }
    capture_from = std::string::npos;
  };

  while (i < len) {
    const char c = data[i];
    switch (state_) {
      // ---- status line ----
      case State::kVersion:
        started_ = true;
        if (version_pos_ == 0 && len - i >= 13 && std::memcmp(data + i, "HTTP/1.", 7) == 0 &&
            (data[i + 7] == '0' || data[i + 7] == '1') && data[i + 8] == ' ' && data[i + 9] >= '1' &&
            data[i + 9] <= '9' && data[i + 10] >= '0' && data[i + 10] <= '9' && data[i + 11] >= '0' &&
            data[i + 11] <= '9') {
          // The whole "HTTP/1.x NNN" is here: take it in one step.
          minor_ = data[i + 7] - '0';
          status_ = (data[i + 9] - '0') * 100 + (data[i + 10] - '0') * 10 + (data[i + 11] - '0');
          code_digits_ = 3;
          state_ = State::kAfterCode;
          i += 12;
          continue;
        }
        if (c != kVersionPrefix[version_pos_]) return Fail("invalid status line (expected HTTP/1.x)", i);
        if (++version_pos_ == kVersionPrefixLen) state_ = State::kVersionMinor;
        break;
      case State::kVersionMinor:
        if (c != '0' && c != '1') return Fail("unsupported HTTP version", i);
        minor_ = c - '0';
        state_ = State::kStatusSpace;
        break;
      case State::kStatusSpace:
        if (c != ' ') return Fail("invalid status line (expected a space after the version)", i);
        state_ = State::kStatusCode;
        break;
      case State::kStatusCode:
        if (c < '0' || c > '9') return Fail("invalid status code", i);
        status_ = status_ * 10 + (c - '0');
        if (++code_digits_ == 3) {
          if (status_ < 100) return Fail("invalid status code", i);
          state_ = State::kAfterCode;
        }
        break;
      case State::kAfterCode:
        if (c == ' ') {
          state_ = State::kReason;
        } else if (c == '\r') {
          state_ = State::kStatusLf;
        } else if (c == '\n') {
          state_ = State::kHeaderStart;
        } else {
          return Fail("invalid status line (expected a space after the status code)", i);
        }
        break;
      case State::kReason: {
        // The reason phrase is skipped in bulk up to the line end.
        const size_t j = ScanFieldText(data, i, len);
        i = j;
        if (j == len) continue;
        if (data[j] != '\r' && data[j] != '\n') return Fail("invalid character in reason phrase", j);
        state_ = data[j] == '\r' ? State::kStatusLf : State::kHeaderStart;
        break;  // the line end is consumed below
      }
      case State::kStatusLf:
        if (c != '\n') return Fail("invalid status line ending", i);
        state_ = State::kHeaderStart;
        break;

      // ---- header and trailer fields ----
      case State::kHeaderStart:
        if (c == '\r') {
          state_ = State::kHeadersEndLf;
        } else if (c == '\n') {
          state_ = State::kHeadersEndLf;
          continue;  // reprocess the '\n' as the end of the header section
        } else if (c == ' ' || c == '\t') {
          return Fail("obsolete line folding in header", i);
        } else if (!IsTokenChar(c)) {
          return Fail("invalid character in header name", i);
        } else {
          name_len_ = 0;
          state_ = State::kHeaderName;
          continue;
        }
        break;
      case State::kHeaderName: {
        // Locals, not members, in the loop: a char store may alias any member, which would force reloads.
        size_t j = i;
        unsigned n = name_len_;
        char* name = name_;
        while (j < len) {
          const auto u = static_cast<unsigned char>(data[j]);
          if (!kTokenChars[u]) break;
          if (n < sizeof name_) name[n] = Lower(static_cast<char>(u));
          n += n <= sizeof name_ ? 1 : 0;  // saturates at sizeof name_ + 1: "too long to matter"
          ++j;
        }
        name_len_ = static_cast<uint8_t>(n);
        i = j;
        if (j == len) continue;
        if (data[j] != ':') return Fail("invalid character in header name", j);
        EndHeaderName();
        state_ = State::kHeaderValueOws;
        break;
      }
      case State::kHeaderValueOws:
        if (c == ' ' || c == '\t') break;
        state_ = State::kHeaderValue;
        continue;
      case State::kHeaderValue:
        if (c == '\r' || c == '\n') {
          if (!EndHeaderValue()) return Fail("invalid or conflicting Content-Length", i);
          if (c == '\r') {
            state_ = State::kHeaderLf;
            break;
          }
          state_ = State::kHeaderStart;
          break;
        }
        if (field_ == Field::kOther) {
          const size_t j = ScanFieldText(data, i, len);
          if (j < len && data[j] != '\r' && data[j] != '\n')
            return Fail("invalid character in header value", j);
          i = j;
          continue;
        }
        {
          // Content-Length, Transfer-Encoding, Connection: short values, read here to the line end.
          size_t j = i;
          for (; j < len; ++j) {
            const char v = data[j];
            if (v == '\r' || v == '\n') break;
            if (v == ',') {
              if (!EndToken()) return Fail("invalid or conflicting Content-Length", j);
            } else if (v == ' ' || v == '\t') {
              // OWS around list elements is ignored.
            } else if (field_ == Field::kContentLength) {
              if (v < '0' || v > '9') return Fail("invalid Content-Length", j);
              if (pending_length_ > (UINT64_MAX - 9) / 10) return Fail("Content-Length too large", j);
              pending_length_ = pending_length_ * 10 + static_cast<uint64_t>(v - '0');
              length_pending_ = true;
              if (token_len_ < 255) ++token_len_;
            } else {
              const auto u = static_cast<unsigned char>(v);
              if (u < 0x20 || u == 0x7f) return Fail("invalid character in header value", j);
              if (token_len_ < sizeof token_) token_[token_len_] = Lower(v);
              if (token_len_ < 255) ++token_len_;
            }
          }
          i = j;
          continue;
        }
      case State::kHeaderLf:
        if (c != '\n') return Fail("invalid header line ending", i);
        state_ = State::kHeaderStart;
        break;
      case State::kHeadersEndLf: {
        if (c != '\n') return Fail("invalid end of header section", i);
        ++i;
        header_bytes_ += static_cast<uint32_t>(i - header_from);
        if (header_bytes_ > kMaxHeaderBytes) return Fail("response header section too large", i);
        header_from = i;
        if (status_ >= 100 && status_ < 200 && status_ != 101) {
          // Informational (100 Continue, 103 Early Hints): skip it; the final response follows.
          const uint32_t info = informational_ + 1;
          const uint32_t used = header_bytes_;
          Reset(no_body_);
          informational_ = info;
          header_bytes_ = used;
          if (header_capture_) header_capture_->clear();
          capture_from = i;
          header_from = i;
          continue;
        }
        flush_capture(i);
        HeadersComplete();
        if (state_ == State::kHeadersEndLf) state_ = State::kComplete;  // no body
        if (state_ == State::kComplete) return i;
        continue;
      }
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kTrailersEndLf;
        } else if (c == '\n') {
          state_ = State::kTrailersEndLf;
          continue;
        } else if (c == ' ' || c == '\t') {
          return Fail("obsolete line folding in trailer", i);
        } else if (!IsTokenChar(c)) {
          return Fail("invalid character in trailer name", i);
        } else {
          state_ = State::kTrailer;
        }
        break;
      case State::kTrailer: {
        const size_t j = ScanFieldText(data, i, len);
        i = j;
        if (j == len) continue;
        if (data[j] != '\r' && data[j] != '\n') return Fail("invalid character in trailer", j);
        state_ = data[j] == '\r' ? State::kTrailerLf : State::kTrailerStart;
        break;  // the line end is consumed below
      }
      case State::kTrailerLf:
        if (c != '\n') return Fail("invalid trailer line ending", i);
        state_ = State::kTrailerStart;
        break;
      case State::kTrailersEndLf:
        if (c != '\n') return Fail("invalid end of trailer section", i);
        ++i;
        flush_capture(i);
        state_ = State::kComplete;
        return i;

      // ---- bodies ----
      case State::kBodyIdentity: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, len - i));
        AppendBody(data + i, n);
        remaining_ -= n;
        i += n;
        if (remaining_ == 0) {
          state_ = State::kComplete;
          return i;
        }
        continue;
      }
      case State::kBodyUntilClose:
        AppendBody(data + i, len - i);
        return len;
      case State::kChunkSize: {
        const int h = HexDigit(c);
        if (h >= 0) {
          if (++chunk_digits_ > 15) return Fail("chunk size too large", i);
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(h);
        } else if (chunk_digits_ == 0) {
          return Fail("invalid chunk size", i);
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kChunkExtension;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else if (c == '\n') {
          state_ = State::kChunkSizeLf;
          continue;
        } else {
          return Fail("invalid chunk size", i);
        }
        break;
      }
      case State::kChunkExtension:
        // chunk-ext (";name=value", possibly quoted) is ignored; control characters are refused.
        if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else if (c == '\n') {
          state_ = State::kChunkSizeLf;
          continue;
        } else if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
          return Fail("invalid character in chunk extension", i);
        }
        break;
      case State::kChunkSizeLf:
        if (c != '\n') return Fail("invalid chunk size line ending", i);
        chunk_digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
          capture_from = i + 1;
          header_from = i + 1;
        } else {
          state_ = State::kChunkData;
        }
        break;
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, len - i));
        AppendBody(data + i, n);
        remaining_ -= n;
        i += n;
        if (remaining_ == 0) state_ = State::kChunkDataCr;
        continue;
      }
      case State::kChunkDataCr:
        if (c == '\r') {
          state_ = State::kChunkDataLf;
        } else if (c == '\n') {
          state_ = State::kChunkSize;
        } else {
          return Fail("missing CRLF after chunk data", i);
        }
        break;
      case State::kChunkDataLf:
        if (c != '\n') return Fail("missing CRLF after chunk data", i);
        state_ = State::kChunkSize;
        break;
      case State::kComplete:
      case State::kError:
        return i;
    }
    ++i;
  }
  flush_capture(i);
  if (InHeaderSection(state_)) {
    // Header bytes are counted per call, not per byte: the parser keeps no bytes, so the bound only has to
    // stop a header section that never ends.
    header_bytes_ += static_cast<uint32_t>(std::min<size_t>(i - header_from, kMaxHeaderBytes + 1));
    if (header_bytes_ > kMaxHeaderBytes) return Fail("response header section too large", i);
  }
  return i;
}

void ResponseParser::FeedEof() {
  if (state_ == State::kBodyUntilClose) {
    state_ = State::kComplete;
    keep_alive_ = false;
  } else if (state_ != State::kComplete && state_ != State::kError) {
    Fail(started_ ? "connection closed before the response was complete"
                  : "connection closed before a response",
         0);
  }
}

}  // namespace meridian::http

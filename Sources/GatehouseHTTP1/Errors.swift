// SPDX-License-Identifier: Apache-2.0

/// Size limits for a message head (and, together with it, its trailers).
public struct HTTP1Limits: Sendable {
    /// Bytes of the request/status line, the field lines and every CRLF, up to and including the
    /// empty line that ends the head. Trailers count toward the same budget, together with the head.
    public var maxHeadBytes: Int
    /// Field lines of the head plus those of the trailers.
    public var maxFieldCount: Int

    public init(maxHeadBytes: Int = 32 * 1024, maxFieldCount: Int = 100) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFieldCount = maxFieldCount
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
public enum HTTP1BodyFraming: Equatable, Sendable {
    case none
    case length(Int)
    case chunked
    /// Responses only: the body runs until the connection closes.
    case untilClose
}

public enum HTTP1ParseError: Error, Equatable, Sendable {
    /// → 431
    case headTooLarge
    /// → 431
    case tooManyFields
    /// → 505
    case unsupportedVersion
    /// → 400; `HTTP1Violation`'s text.
    case invalid(String)

    init(_ violation: HTTP1Violation) {
        self = .invalid(violation.rawValue)
    }

    /// The violation behind an `.invalid` error (for the differential fuzzer's allow-list).
    package var violation: HTTP1Violation? {
        if case .invalid(let reason) = self { return HTTP1Violation(rawValue: reason) }
        return nil
    }
}

/// Every reason the parser refuses a message. The raw value is the text of `.invalid`.
package enum HTTP1Violation: String, Sendable, CaseIterable {
    // Line structure (RFC 9112 §2.2).
    case bareLF = "bare LF in the head"
    case bareCR = "bare CR in the head"
    case bareLineEndBeforeMessage = "bare CR or LF before the start line"
    case tooManyEmptyLines = "too many empty lines before the start line"
    case obsFold = "obs-fold (a field line starting with SP or HTAB)"
    // Request line (RFC 9112 §3).
    case methodNotToken = "method is not a token"
    case unknownMethod = "unregistered method"
    case requestLineSpacing = "request-line parts must be separated by exactly one SP"
    case malformedRequestLine = "malformed request line"
    case targetByte = "request-target byte outside 0x21-0x7E"
    case targetForm = "request-target is not in a form the method allows"
    case malformedVersion = "malformed HTTP version"
    case protocolNotHTTP = "protocol other than HTTP"
    // Status line (RFC 9112 §4).
    case malformedStatusLine = "malformed status line"
    case reasonByte = "invalid byte in the reason phrase"
    case bareCRInStatusLine = "bare CR in the status line"
    // Field lines (RFC 9112 §5, RFC 9110 §5).
    case missingColon = "field line without a colon"
    case emptyFieldName = "empty field name"
    case fieldNameByte = "field name is not a token"
    case whitespaceBeforeColon = "whitespace between field name and colon"
    case fieldValueByte = "invalid byte in a field value"
    // Framing (RFC 9112 §6).
    case invalidContentLength = "invalid Content-Length"
    case duplicateContentLength = "more than one Content-Length field"
    case contentLengthTooLarge = "Content-Length above 2^53"
    case contentLengthWithTransferEncoding = "Content-Length and Transfer-Encoding together"
    case requestTransferCoding = "request Transfer-Encoding other than exactly one chunked (RFC 9112 §6.1: codings other than chunked are refused)"
    case responseTransferCoding = "malformed response Transfer-Encoding"
    case transferEncodingInHTTP10 = "Transfer-Encoding in an HTTP/1.0 message"
    case connectWithContent = "CONNECT request with content"
    case framingFieldInTrailers = "Content-Length, Transfer-Encoding or Connection in trailers"
    case dataAfterClose = "data after a message that closes the connection"
    // Chunked coding (RFC 9112 §7.1).
    case chunkSize = "invalid chunk-size"
    case chunkSizeTooLarge = "chunk-size over 16 hex digits or above 2^53"
    case chunkExtension = "malformed chunk extension"
    case chunkLineTooLong = "chunk-size line longer than maxHeadBytes"
    case chunkLineEnd = "chunk-size line not ended by CRLF"
    case chunkDataEnd = "chunk data not followed by CRLF"
    // End of input (responses).
    case closedMidMessage = "the upstream closed mid-message"
}

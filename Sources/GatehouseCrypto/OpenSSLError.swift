// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// A libcrypto call failed: which call, and what OpenSSL's thread-local error queue said at that moment.
public struct OpenSSLError: Error, CustomStringConvertible, Sendable {
    /// The libcrypto function or step that failed.
    public let operation: String
    /// OpenSSL's own messages, oldest first (may be empty).
    public let details: [String]

    public var description: String {
        self.details.isEmpty ? "\(self.operation) failed" : "\(self.operation) failed: \(self.details.joined(separator: "; "))"
    }

    /// Captures and clears the calling thread's error queue, so that no stale error
    /// leaks into the next operation on the same thread.
    static func drain(_ operation: String) -> OpenSSLError {
        var details: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            details.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return OpenSSLError(operation: operation, details: details)
    }

    /// Forgets whatever a failed-but-expected call (a bad signature, say) left on the queue.
    @inline(__always)
    static func clearQueue() {
        ERR_clear_error()
    }
}

/// Throws `OpenSSLError` unless `status` is 1, libcrypto's success value.
@inline(__always)
func check(_ status: Int32, _ operation: @autoclosure () -> String) throws(OpenSSLError) {
    guard status == 1 else { throw OpenSSLError.drain(operation()) }
}

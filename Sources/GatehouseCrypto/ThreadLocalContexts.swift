// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-thread libcrypto contexts for the verify path.
///
/// An `EVP_MD_CTX` or `EVP_MAC_CTX` must not be used by two threads at once, and initialising one
/// per call costs 10–100 % of a verification. So every thread keeps, per prepared key, a context
/// initialised once (a template it copies, or a keyed MAC it re-initialises), plus one scratch
/// digest context. Nothing is shared, so nothing is locked.
final class ThreadLocalContexts {
    /// Templates by the owning verifier's `identifier`; each holds its own reference to the key.
    /// Searched linearly: a gateway has a handful of keys, and hashing cost more than the scan.
    private var templates: [(identifier: UInt64, context: OpaquePointer)] = []
    private var macs: [(identifier: UInt64, context: OpaquePointer)] = []
    /// The context each verification copies a template into; reused, never shared.
    let scratch: OpaquePointer

    /// Past this many keys a thread drops its cache and starts over: keys rotate rarely, so this
    /// only bounds memory (and the scan) over a very long life.
    private static let capacity = 64

    private init() {
        guard let scratch = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed") }
        self.scratch = scratch
    }

    deinit {
        self.templates.forEach { EVP_MD_CTX_free($0.context) }
        self.macs.forEach { EVP_MAC_CTX_free($0.context) }
        EVP_MD_CTX_free(self.scratch)
    }

    /// This thread's contexts.
    static var current: ThreadLocalContexts {
        if let existing = pthread_getspecific(key.value) {
            return Unmanaged<ThreadLocalContexts>.fromOpaque(existing).takeUnretainedValue()
        }
        let created = ThreadLocalContexts()
        pthread_setspecific(key.value, Unmanaged.passRetained(created).toOpaque())
        return created
    }

    /// The digest-verify template for `identifier`, made by `make` the first time on this thread.
    @inline(__always)
    func template(_ identifier: UInt64, make: () -> OpaquePointer?) -> OpaquePointer? {
        for entry in self.templates where entry.identifier == identifier { return entry.context }
        return Self.insert(identifier, make: make, into: &self.templates, free: { EVP_MD_CTX_free($0) })
    }

    /// The keyed MAC context for `identifier`, made by `make` the first time on this thread.
    @inline(__always)
    func mac(_ identifier: UInt64, make: () -> OpaquePointer?) -> OpaquePointer? {
        for entry in self.macs where entry.identifier == identifier { return entry.context }
        return Self.insert(identifier, make: make, into: &self.macs, free: { EVP_MAC_CTX_free($0) })
    }

    private static func insert(
        _ identifier: UInt64, make: () -> OpaquePointer?, into entries: inout [(identifier: UInt64, context: OpaquePointer)],
        free: (OpaquePointer) -> Void
    ) -> OpaquePointer? {
        guard let context = make() else { return nil }
        if entries.count >= Self.capacity {
            entries.forEach { free($0.context) }
            entries.removeAll()
        }
        entries.append((identifier, context))
        return context
    }

    private static let key = ThreadKey()

    /// The pthread key whose destructor releases a thread's contexts when the thread ends.
    private final class ThreadKey: Sendable {
        let value: pthread_key_t

        init() {
            var value = pthread_key_t()
            let status = pthread_key_create(&value) { pointer in
                guard let pointer else { return }
                Unmanaged<ThreadLocalContexts>.fromOpaque(pointer).release()
            }
            precondition(status == 0, "pthread_key_create failed")
            self.value = value
        }
    }
}

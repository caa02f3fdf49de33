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
    private var templates: [UInt64: OpaquePointer] = [:]
    private var macs: [UInt64: OpaquePointer] = [:]
    /// The context each verification copies a template into; reused, never shared.
    let scratch: OpaquePointer

    /// Past this many keys a thread drops its cache and starts over: keys rotate rarely, so this
    /// only bounds memory over a very long life.
    private static let capacity = 256

    private init() {
        guard let scratch = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed") }
        self.scratch = scratch
    }

    deinit {
        self.templates.values.forEach { EVP_MD_CTX_free($0) }
        self.macs.values.forEach { EVP_MAC_CTX_free($0) }
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
    func template(_ identifier: UInt64, make: () -> OpaquePointer?) -> OpaquePointer? {
        if let template = self.templates[identifier] { return template }
        guard let template = make() else { return nil }
        if self.templates.count >= Self.capacity {
            self.templates.values.forEach { EVP_MD_CTX_free($0) }
            self.templates.removeAll()
        }
        self.templates[identifier] = template
        return template
    }

    /// The keyed MAC context for `identifier`, made by `make` the first time on this thread.
    func mac(_ identifier: UInt64, make: () -> OpaquePointer?) -> OpaquePointer? {
        if let mac = self.macs[identifier] { return mac }
        guard let mac = make() else { return nil }
        if self.macs.count >= Self.capacity {
            self.macs.values.forEach { EVP_MAC_CTX_free($0) }
            self.macs.removeAll()
        }
        self.macs[identifier] = mac
        return mac
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

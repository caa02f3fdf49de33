// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// How many CPUs this process may use: what `threads: 0` and the Argon2 pool are sized by.
///
/// The machine's core count is the wrong figure under `taskset`, a cpuset or a CPU quota (a
/// container's `--cpus`, Kubernetes' `limits.cpu`): more event loops or hashing threads than CPUs
/// only share them, and two 19 MiB Argon2 hashes on one core evict each other's cache.
public enum Processors {
    /// The CPUs in this process's affinity mask, bounded by its cgroup's CPU quota (cgroup v2
    /// `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, at every level up to the root),
    /// rounded up; at least 1.
    public static var available: Int {
        var count = Self.affinityCount() ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let quota = Self.cgroupQuota() { count = min(count, quota) }
        return max(1, count)
    }

    /// The number of CPUs in the affinity mask (of up to 1024 CPUs), nil when it cannot be read.
    static func affinityCount() -> Int? {
        #if os(Linux)
        var mask = [UInt64](repeating: 0, count: 16)
        let status = mask.withUnsafeMutableBytes { sched_getaffinity_(0, $0.count, $0.baseAddress!) }
        guard status == 0 else { return nil }
        let count = mask.reduce(0) { $0 + $1.nonzeroBitCount }
        return count > 0 ? count : nil
        #else
        return nil
        #endif
    }

    /// The tightest CPU quota of this process's cgroups, in whole CPUs rounded up; nil when none is set.
    static func cgroupQuota() -> Int? {
        guard let membership = Self.read("/proc/self/cgroup") else { return nil }
        var tightest: Int?
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let controllers = fields[1].split(separator: ",")
            let limit: (String) -> Int?
            let root: String
            if fields[0] == "0", controllers.isEmpty {
                root = "/sys/fs/cgroup"
                limit = { directory in Self.read(directory + "/cpu.max").flatMap(Self.quotaV2) }
            } else if controllers.contains("cpu") {
                root = "/sys/fs/cgroup/" + fields[1]
                limit = { directory in
                    guard let quota = Self.read(directory + "/cpu.cfs_quota_us"), let period = Self.read(directory + "/cpu.cfs_period_us") else {
                        return nil
                    }
                    return Self.quota(quota, period: period)
                }
            } else {
                continue
            }
            // The process's own group and every ancestor: a parent's quota binds its children too.
            var path = String(fields[2])
            while true {
                if let cpus = limit(root + (path == "/" ? "" : path)) { tightest = min(tightest ?? cpus, cpus) }
                guard path != "/", !path.isEmpty, let slash = path.lastIndex(of: "/") else { break }
                path = slash == path.startIndex ? "/" : String(path[..<slash])
            }
        }
        return tightest
    }

    /// `cpu.max`: `QUOTA PERIOD`, or `max PERIOD` for no limit.
    static func quotaV2(_ text: String) -> Int? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2 else { return nil }
        return Self.quota(String(fields[0]), period: String(fields[1]))
    }

    /// Whole CPUs for a quota over a period (microseconds), rounded up; nil for no limit (`max`,
    /// `-1`) or anything that is not a pair of positive numbers.
    static func quota(_ quota: String, period: String) -> Int? {
        guard let quota = Int(quota.filter { !$0.isWhitespace }), let period = Int(period.filter { !$0.isWhitespace }), quota > 0, period > 0
        else { return nil }
        return quota / period + (quota % period == 0 ? 0 : 1)
    }

    private static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = fread(&buffer, 1, buffer.count, file)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
    }
}

#if os(Linux)
/// glibc's `sched_getaffinity`, which its Swift module leaves out (it is declared under `_GNU_SOURCE`).
@_silgen_name("sched_getaffinity")
private func sched_getaffinity_(_ pid: pid_t, _ size: Int, _ mask: UnsafeMutableRawPointer) -> Int32
#endif

/*
 * Apache Curator recipes (Debian's libcurator-recipes-java 5.4) against a
 * ZooKeeper-compatible server.  Every check is a real application pattern,
 * runs with its own clients (one ZooKeeper session per participant) under its
 * own top-level znode, and has a deadline.  Output: one "PASS <name>" or
 * "FAIL <name>: <why>" line per check, then "curator: N passed, M failed".
 * Exit status 0 only if every check passed.
 *
 *   java -cp <classes>:/usr/share/java/curator-recipes.jar:/usr/share/java/slf4j-simple.jar \
 *        CuratorRecipes [host:port] [check ...]
 *
 * The address defaults to $ZK_ADDR, then 127.0.0.1:2181.  Naming checks runs
 * only those.  Nothing here sleeps and hopes: every wait polls a condition
 * against the check's deadline; the only sleeps are short "work" inside a
 * critical section, which widen the window in which an overlap would show.
 */

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.PathChildrenCache;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.BoundedExponentialBackoffRetry;
import org.apache.curator.utils.ZKPaths;
import org.apache.zookeeper.data.Stat;

public final class CuratorRecipes {
    static String zkAddr;
    static final long CHECK_DEADLINE_MS = 20_000;   // per check
    static final int SESSION_TIMEOUT_MS = 20_000;
    static final long POLL_MS = 5;
    /** Whole-run budget (CURATOR_BUDGET_MS, default 70 s): a check never runs
     *  past it, and checks left when it is spent fail without running. */
    static long globalDeadlineNanos;

    // ------------------------------------------------------------------ harness

    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;
        CheckFailed(String msg) { super(msg); }
    }

    interface Body { void run(Ctx c) throws Exception; }

    /** Per-check context: deadline, clients, cleanup, violations reported by
     *  callbacks running on other threads. */
    static final class Ctx {
        final String name;
        final String base;           // this check's own top-level znode
        final long deadlineNanos;
        final List<AutoCloseable> toClose = new CopyOnWriteArrayList<>();
        final ConcurrentLinkedQueue<String> violations = new ConcurrentLinkedQueue<>();
        final ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        CuratorFramework admin;      // a client for setup/inspection/cleanup

        Ctx(String name) {
            this.name = name;
            this.base = "/curator-it-" + name + "-" + UUID.randomUUID().toString().substring(0, 8);
            this.deadlineNanos = Math.min(System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CHECK_DEADLINE_MS),
                                          globalDeadlineNanos);
        }

        long remainingMs() {
            return Math.max(0, TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime()));
        }

        /** A new, started, connected client (its own ZooKeeper session). */
        CuratorFramework client() throws Exception {
            CuratorFramework cf = CuratorFrameworkFactory.builder()
                    .connectString(zkAddr)
                    .sessionTimeoutMs(SESSION_TIMEOUT_MS)
                    .connectionTimeoutMs(5_000)
                    .retryPolicy(new BoundedExponentialBackoffRetry(50, 500, 10))
                    .build();
            onClose(cf);
            cf.start();
            if (!cf.blockUntilConnected((int) Math.max(1, remainingMs()), TimeUnit.MILLISECONDS)) {
                throw new CheckFailed("client did not connect to " + zkAddr);
            }
            return cf;
        }

        <T extends AutoCloseable> T onClose(T c) { toClose.add(c); return c; }

        void violation(String fmt, Object... args) {
            String v = String.format(fmt, args);
            violations.add(v);
            System.out.println("    violation: " + v);
        }

        void noViolations() {
            String v = violations.peek();
            if (v != null) throw new CheckFailed(v);
        }

        void check(boolean cond, String fmt, Object... args) {
            if (!cond) throw new CheckFailed(String.format(fmt, args));
        }

        /** Polls cond until it holds; fails at the check's deadline or as soon
         *  as a callback has reported a violation. */
        void waitFor(String what, BooleanSupplier cond) throws InterruptedException {
            waitFor(what, cond, () -> "");
        }

        /** The same, with the state to report if the deadline passes. */
        void waitFor(String what, BooleanSupplier cond, java.util.function.Supplier<String> state)
                throws InterruptedException {
            while (true) {
                noViolations();
                if (cond.getAsBoolean()) return;
                if (System.nanoTime() - deadlineNanos >= 0) {
                    String st = state.get();
                    throw new CheckFailed("timed out waiting for " + what + (st.isEmpty() ? "" : " (" + st + ")"));
                }
                Thread.sleep(POLL_MS);
            }
        }

        /** Waits for a future started on pool, rethrowing its failure. */
        <T> T join(Future<T> f, String what) throws Exception {
            try {
                return f.get(Math.max(1, remainingMs()), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                throw new CheckFailed("timed out waiting for " + what);
            } catch (java.util.concurrent.ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof Exception) throw (Exception) cause;
                throw new RuntimeException(cause);
            }
        }

        List<String> children(String path) {
            try {
                List<String> l = new ArrayList<>(admin.getChildren().forPath(path));
                Collections.sort(l);
                return l;
            } catch (org.apache.zookeeper.KeeperException.NoNodeException e) {
                return Collections.emptyList();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        }

        void cleanup() {
            // recipes first, then their clients: each group closed in
            // parallel and bounded in time, so a wedged close cannot stall
            // the run
            List<AutoCloseable> recipes = new ArrayList<>(), clients = new ArrayList<>();
            for (int i = toClose.size() - 1; i >= 0; i--) {
                AutoCloseable c = toClose.get(i);
                if (c == admin) continue;
                (c instanceof CuratorFramework ? clients : recipes).add(c);
            }
            closeAll(recipes, 3_000);
            closeAll(clients, 3_000);
            if (admin != null) {
                Future<?> f = pool.submit(() -> {
                    admin.delete().deletingChildrenIfNeeded().forPath(base);
                    return null;
                });
                try {
                    f.get(5, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.zookeeper.KeeperException.NoNodeException)) {
                        System.out.println("    cleanup of " + base + " failed: " + e.getCause());
                    }
                } catch (Exception e) {
                    System.out.println("    cleanup of " + base + " failed: " + e);
                }
                closeAll(Collections.singletonList(admin), 3_000);
            }
            pool.shutdownNow();
        }

        static void closeAll(List<AutoCloseable> cs, long boundMs) {
            List<Thread> ts = new ArrayList<>();
            for (AutoCloseable c : cs) {
                Thread t = new Thread(() -> {
                    try { c.close(); } catch (Throwable ignored) { }
                });
                t.setDaemon(true);
                t.start();
                ts.add(t);
            }
            long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(boundMs);
            for (Thread t : ts) {
                long left = TimeUnit.NANOSECONDS.toMillis(end - System.nanoTime());
                if (left <= 0) break;
                try { t.join(left); } catch (InterruptedException ignored) { }
            }
        }
    }

    static final Map<String, Body> CHECKS = new LinkedHashMap<>();
    static {
        CHECKS.put("LeaderLatch", CuratorRecipes::leaderLatch);
        CHECKS.put("LeaderSelector", CuratorRecipes::leaderSelector);
        CHECKS.put("InterProcessMutex", CuratorRecipes::interProcessMutex);
        CHECKS.put("InterProcessReadWriteLock", CuratorRecipes::readWriteLock);
        CHECKS.put("DistributedQueue", CuratorRecipes::distributedQueue);
        CHECKS.put("DistributedBarrier", CuratorRecipes::distributedBarrier);
        CHECKS.put("DistributedDoubleBarrier", CuratorRecipes::doubleBarrier);
        CHECKS.put("PathChildrenCache", CuratorRecipes::pathChildrenCache);
        CHECKS.put("CuratorCache", CuratorRecipes::curatorCache);
    }

    public static void main(String[] args) throws Exception {
        List<String> names = new ArrayList<>();
        zkAddr = System.getenv().getOrDefault("ZK_ADDR", "127.0.0.1:2181");
        for (String a : args) {
            if (a.contains(":")) zkAddr = a; else names.add(a);
        }
        if (names.isEmpty()) names.addAll(CHECKS.keySet());
        long budget = Long.parseLong(System.getenv().getOrDefault("CURATOR_BUDGET_MS", "70000"));
        globalDeadlineNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(budget);
        System.out.println("curator: testing " + zkAddr);
        if (!reachable(10_000)) {
            System.out.println("FAIL connect: no ZooKeeper session with " + zkAddr + " within 10 s");
            System.out.println("curator: 0 passed, 1 failed");
            System.out.flush();
            System.exit(1);
        }
        int passed = 0, failed = 0;
        for (String name : names) {
            Body body = CHECKS.get(name);
            if (body == null) {
                System.out.println("FAIL " + name + ": no such check (have " + CHECKS.keySet() + ")");
                failed++;
                continue;
            }
            if (globalDeadlineNanos - System.nanoTime() < 2_000_000_000L) {
                System.out.println("FAIL " + name + ": not run, the " + budget + " ms time budget is spent");
                failed++;
                continue;
            }
            if (runCheck(name, body)) passed++; else failed++;
        }
        System.out.println("curator: " + passed + " passed, " + failed + " failed");
        System.out.flush();
        // System.exit: a broken check may have left non-daemon library threads
        System.exit(failed == 0 ? 0 : 1);
    }

    /** One client connects, so that a dead address fails fast. */
    static boolean reachable(int ms) throws InterruptedException {
        CuratorFramework cf = CuratorFrameworkFactory.builder()
                .connectString(zkAddr)
                .sessionTimeoutMs(SESSION_TIMEOUT_MS)
                .connectionTimeoutMs(ms)
                .retryPolicy(new BoundedExponentialBackoffRetry(50, 500, 3))
                .build();
        try {
            cf.start();
            return cf.blockUntilConnected(ms, TimeUnit.MILLISECONDS);
        } finally {
            Ctx.closeAll(Collections.singletonList(cf), 3_000);
        }
    }

    static boolean runCheck(String name, Body body) {
        Ctx c = new Ctx(name);
        long t0 = System.nanoTime();
        Thread runner = null;
        String failure = null;
        try {
            c.admin = c.client();
            c.admin.create().forPath(c.base);
            AtomicReference<Throwable> err = new AtomicReference<>();
            runner = new Thread(() -> {
                try {
                    body.run(c);
                    c.noViolations();
                } catch (Throwable t) {
                    err.set(t);
                }
            }, "check-" + name);
            runner.setDaemon(true);
            runner.start();
            runner.join(Math.max(1, c.remainingMs()) + 1_000);
            if (runner.isAlive()) {
                StringBuilder sb = new StringBuilder("deadline exceeded; check thread at:");
                for (StackTraceElement e : runner.getStackTrace()) {
                    sb.append("\n        at ").append(e);
                }
                runner.interrupt();
                failure = sb.toString();
            } else if (err.get() != null) {
                failure = describe(err.get());
            } else if (!c.violations.isEmpty()) {
                failure = c.violations.peek();
            }
        } catch (Throwable t) {
            failure = describe(t);
        } finally {
            c.cleanup();
        }
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        if (failure == null) {
            System.out.println("PASS " + name + " (" + ms + " ms)");
        } else {
            System.out.println("FAIL " + name + " (" + ms + " ms): " + failure);
        }
        System.out.flush();
        return failure == null;
    }

    static String describe(Throwable t) {
        if (t instanceof CheckFailed) return t.getMessage();
        StringBuilder sb = new StringBuilder(t.toString());
        for (StackTraceElement e : t.getStackTrace()) {
            sb.append("\n        at ").append(e);
            if (e.getClassName().equals(CuratorRecipes.class.getName())) break;
        }
        return sb.toString();
    }

    static byte[] bytes(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String str(byte[] b) { return b == null ? null : new String(b, StandardCharsets.UTF_8); }

    // ------------------------------------------------------------------ LeaderLatch

    /** Three participants (three sessions).  Exactly one leader at a time;
     *  when the leader closes its latch, leadership moves to another
     *  participant, in the order the participants' sequential nodes were
     *  created, until the last one is left. */
    static void leaderLatch(Ctx c) throws Exception {
        final String path = c.base + "/latch";
        final int n = 3;
        // The participant currently allowed to be leader.  It is cleared just
        // before the test closes the leader's latch (Curator deletes the
        // latch node before it clears its own flag), so a second isLeader()
        // while it is set means two participants led at the same time.
        AtomicReference<String> holder = new AtomicReference<>();
        List<String> history = new CopyOnWriteArrayList<>();
        LeaderLatch[] latches = new LeaderLatch[n];
        for (int i = 0; i < n; i++) {
            final String id = "p" + i;
            latches[i] = c.onClose(new LeaderLatch(c.client(), path, id, LeaderLatch.CloseMode.NOTIFY_LEADER));
            latches[i].addListener(new LeaderLatchListener() {
                @Override public void isLeader() {
                    history.add(id);
                    if (!holder.compareAndSet(null, id)) {
                        c.violation("%s became leader while %s was still leader", id, holder.get());
                    }
                }
                @Override public void notLeader() { holder.compareAndSet(id, null); }
            });
        }
        for (LeaderLatch l : latches) l.start();

        List<Integer> remaining = new ArrayList<>(Arrays.asList(0, 1, 2));
        List<String> expectedOrder = new ArrayList<>();
        while (!remaining.isEmpty()) {
            final List<Integer> rem = new ArrayList<>(remaining);
            // every remaining latch knows its node, and those are all the nodes
            c.waitFor(rem.size() + " latch nodes", () -> {
                Set<String> own = new TreeSet<>();
                for (int i : rem) {
                    String p = latches[i].getOurPath();
                    if (p == null) return false;
                    own.add(ZKPaths.getNodeFromPath(p));
                }
                return new TreeSet<>(c.children(path)).equals(own);
            });
            if (expectedOrder.isEmpty()) {
                // leadership must follow the order of the sequential nodes
                List<String> nodes = c.children(path);
                nodes.sort((a, b) -> a.substring(a.length() - 10).compareTo(b.substring(b.length() - 10)));
                for (String node : nodes) {
                    for (LeaderLatch l : latches) {
                        if (ZKPaths.getNodeFromPath(l.getOurPath()).equals(node)) expectedOrder.add(l.getId());
                    }
                }
                c.check(expectedOrder.size() == n, "latch nodes %s do not match the latches' own paths", nodes);
            }
            c.waitFor("a leader among " + rem, () -> rem.stream().anyMatch(i -> latches[i].hasLeadership()));
            int leader = -1, leaders = 0;
            for (int i : rem) if (latches[i].hasLeadership()) { leader = i; leaders++; }
            c.check(leaders == 1, "%d latches claim leadership at once", leaders);
            String leaderId = latches[leader].getId();
            // (the flag is set just before the listeners run)
            c.waitFor("isLeader() for " + leaderId, () -> leaderId.equals(holder.get()),
                    () -> "holder " + holder.get());
            String expected = expectedOrder.get(n - rem.size());
            c.check(leaderId.equals(expected),
                    "leader is %s but the lowest sequential node belongs to %s", leaderId, expected);
            for (int i : rem) {
                Participant p = latches[i].getLeader();
                c.check(p.isLeader() && p.getId().equals(leaderId),
                        "%s sees leader %s, expected %s", latches[i].getId(), p.getId(), leaderId);
                int claiming = 0;
                for (Participant q : latches[i].getParticipants()) if (q.isLeader()) claiming++;
                c.check(claiming == 1, "getParticipants() shows %d leaders", claiming);
            }
            holder.set(null);             // the leader now resigns
            latches[leader].close(LeaderLatch.CloseMode.NOTIFY_LEADER);
            c.check(!latches[leader].hasLeadership(), "closed latch %s still has leadership", leaderId);
            remaining.remove(Integer.valueOf(leader));
        }
        c.waitFor("the last latch node to go", () -> c.children(path).isEmpty());
        c.check(history.equals(expectedOrder), "leadership history %s, expected %s", history, expectedOrder);
    }

    // ------------------------------------------------------------------ LeaderSelector

    /** Three participants with autoRequeue, each relinquishing leadership by
     *  returning from takeLeadership().  Never two leaders at once, every
     *  participant leads, and (the internal lock is fair) they take turns in
     *  a fixed rotation. */
    static void leaderSelector(Ctx c) throws Exception {
        final String path = c.base + "/selector";
        final int n = 3, rounds = 3;
        AtomicInteger active = new AtomicInteger();
        List<String> order = new CopyOnWriteArrayList<>();
        LeaderSelector[] sels = new LeaderSelector[n];
        for (int i = 0; i < n; i++) {
            final String id = "s" + i;
            final int idx = i;
            CuratorFramework cf = c.client();
            sels[i] = c.onClose(new LeaderSelector(cf, path, new LeaderSelectorListenerAdapter() {
                @Override public void takeLeadership(CuratorFramework client) throws Exception {
                    int now = active.incrementAndGet();
                    try {
                        if (now != 1) c.violation("%s took leadership while %d others led", id, now - 1);
                        order.add(id);
                        if (order.size() == 1) {
                            // first leader: hold until everyone is queued, so
                            // the rotation that follows is deterministic
                            while (sels[0] == null || sels[n - 1] == null
                                    || sels[idx].getParticipants().size() < n) {
                                if (c.remainingMs() == 0) return;
                                Thread.sleep(POLL_MS);
                            }
                        }
                        Thread.sleep(30);   // "work" while leading
                    } finally {
                        active.decrementAndGet();
                    }
                }
            }));
            sels[i].setId(id);
            sels[i].autoRequeue();
        }
        for (LeaderSelector s : sels) s.start();
        c.waitFor(rounds + " rounds of leadership", () -> order.size() >= n * rounds);
        for (LeaderSelector s : sels) s.close();
        List<String> seen = new ArrayList<>(order).subList(0, n * rounds);
        c.check(new HashSet<>(seen.subList(0, n)).size() == n, "first %d leaders %s are not all different", n, seen);
        for (int i = n; i < seen.size(); i++) {
            c.check(seen.get(i).equals(seen.get(i - n)), "leaders did not rotate fairly: %s", seen);
        }
        c.waitFor("selector lock nodes to go", () -> c.children(path).isEmpty());
    }

    // ------------------------------------------------------------------ InterProcessMutex

    /** T clients, each with its own InterProcessMutex on the same path, do M
     *  read-modify-write increments of a counter znode under the lock (the
     *  write is conditional on the version read).  Never two holders at
     *  once, and the final count and version are exact. */
    static void interProcessMutex(Ctx c) throws Exception {
        final int threads = 5, iters = 20;
        final String lockPath = c.base + "/lock", counter = c.base + "/counter";
        c.admin.create().forPath(counter, bytes("0"));
        AtomicInteger holders = new AtomicInteger();
        List<Future<Void>> fs = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            CuratorFramework cf = c.client();
            InterProcessMutex m = new InterProcessMutex(cf, lockPath);
            fs.add(c.pool.submit(() -> {
                for (int j = 0; j < iters; j++) {
                    if (!m.acquire(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS)) {
                        throw new CheckFailed("acquire timed out");
                    }
                    try {
                        if (holders.incrementAndGet() != 1) c.violation("two holders of the mutex at once");
                        Stat st = new Stat();
                        int v = Integer.parseInt(str(cf.getData().storingStatIn(st).forPath(counter)));
                        cf.setData().withVersion(st.getVersion()).forPath(counter, bytes(Integer.toString(v + 1)));
                        holders.decrementAndGet();
                    } finally {
                        m.release();
                    }
                }
                return null;
            }));
        }
        for (Future<Void> f : fs) c.join(f, "the incrementing threads");
        Stat st = new Stat();
        int v = Integer.parseInt(str(c.admin.getData().storingStatIn(st).forPath(counter)));
        c.check(v == threads * iters, "counter is %d, expected %d", v, threads * iters);
        c.check(st.getVersion() == threads * iters, "counter version is %d, expected %d", st.getVersion(), threads * iters);
        c.check(c.children(lockPath).isEmpty(), "lock nodes left behind: %s", c.children(lockPath));
    }

    // ------------------------------------------------------------------ InterProcessReadWriteLock

    /** A participant holding a lock on its own thread (Curator locks are
     *  owned by the acquiring thread) until told to release it. */
    static final class Holder {
        final String name;
        final CountDownLatch acquired = new CountDownLatch(1);
        final CountDownLatch releaseCmd = new CountDownLatch(1);
        final CountDownLatch released = new CountDownLatch(1);
        Future<Void> f;

        Holder(Ctx c, String name, org.apache.curator.framework.recipes.locks.InterProcessLock lock,
               Runnable onAcquire, Runnable onRelease) {
            this.name = name;
            f = c.pool.submit(() -> {
                if (!lock.acquire(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS)) {
                    throw new CheckFailed(name + ": acquire timed out");
                }
                onAcquire.run();
                acquired.countDown();
                releaseCmd.await();
                onRelease.run();
                lock.release();
                released.countDown();
                return null;
            });
        }

        boolean holds() { return acquired.getCount() == 0 && released.getCount() != 0; }
    }

    /** Three readers hold the read lock at the same time; a writer that
     *  queues meanwhile waits until all of them have released; a reader that
     *  queues behind the writer waits until the writer has released. */
    static void readWriteLock(Ctx c) throws Exception {
        final String path = c.base + "/rwlock";
        AtomicInteger readers = new AtomicInteger(), writers = new AtomicInteger();
        Runnable readerIn = () -> {
            if (writers.get() != 0) c.violation("a reader acquired while the writer held the lock");
            readers.incrementAndGet();
        };
        Runnable readerOut = readers::decrementAndGet;
        Runnable writerIn = () -> {
            int w = writers.incrementAndGet();
            if (w != 1 || readers.get() != 0) {
                c.violation("the writer acquired with %d readers and %d writers holding", readers.get(), w - 1);
            }
        };
        Runnable writerOut = writers::decrementAndGet;

        List<Holder> rs = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            rs.add(new Holder(c, "reader" + i, new InterProcessReadWriteLock(c.client(), path).readLock(), readerIn, readerOut));
        }
        c.waitFor("3 readers holding the read lock together", () -> readers.get() == 3);

        CuratorFramework wcf = c.client();
        Holder w = new Holder(c, "writer", new InterProcessReadWriteLock(wcf, path).writeLock(), writerIn, writerOut);
        c.waitFor("the writer to queue", () -> c.children(path).size() == 4);
        c.check(!w.holds(), "the writer acquired while 3 readers held the lock");

        Holder late = new Holder(c, "late-reader", new InterProcessReadWriteLock(c.client(), path).readLock(), readerIn, readerOut);
        c.waitFor("the late reader to queue", () -> c.children(path).size() == 5);

        for (int i = 0; i < 2; i++) {
            rs.get(i).releaseCmd.countDown();
            c.join(rs.get(i).f, "reader" + i + " to release");
        }
        c.waitFor("2 readers' nodes to go", () -> c.children(path).size() == 3);
        c.check(!w.holds(), "the writer acquired while a reader held the lock");
        c.check(!late.holds(), "a reader queued behind the writer acquired before it");

        rs.get(2).releaseCmd.countDown();
        c.join(rs.get(2).f, "reader2 to release");
        c.waitFor("the writer to acquire after the readers released", w::holds);
        c.check(!late.holds(), "a reader acquired while the writer held the lock");

        w.releaseCmd.countDown();
        c.join(w.f, "the writer to release");
        c.waitFor("the late reader to acquire after the writer released", late::holds);
        late.releaseCmd.countDown();
        c.join(late.f, "the late reader to release");
        c.waitFor("all lock nodes to go", () -> c.children(path).isEmpty());
    }

    // ------------------------------------------------------------------ DistributedQueue

    static final QueueSerializer<String> STRINGS = new QueueSerializer<String>() {
        @Override public byte[] serialize(String item) { return bytes(item); }
        @Override public String deserialize(byte[] b) { return str(b); }
    };

    static final class Collector implements QueueConsumer<String> {
        final List<String> got = new CopyOnWriteArrayList<>();
        @Override public void consumeMessage(String message) { got.add(message); }
        @Override public void stateChanged(CuratorFramework client, ConnectionState newState) { }
    }

    /** One client puts items; another consumes them: all, once each, in FIFO
     *  order.  Then two competing consumers: every item consumed exactly
     *  once between them. */
    static void distributedQueue(Ctx c) throws Exception {
        // phase 1: one consumer, FIFO
        final String q1 = c.base + "/fifo";
        final int n1 = 50;
        Collector one = new Collector();
        DistributedQueue<String> consumer = c.onClose(QueueBuilder.builder(c.client(), one, STRINGS, q1).buildQueue());
        consumer.start();
        DistributedQueue<String> producer = c.onClose(QueueBuilder.builder(c.client(), null, STRINGS, q1).buildQueue());
        producer.start();
        List<String> sent = new ArrayList<>();
        for (int i = 0; i < n1; i++) {
            String item = String.format("item-%03d", i);
            sent.add(item);
            producer.put(item);
        }
        c.check(producer.flushPuts(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS), "puts not flushed");
        c.waitFor(n1 + " items consumed", () -> one.got.size() >= n1,
                () -> "consumed " + one.got + ", left in the queue " + c.children(q1));
        c.waitFor("the queue to be empty", () -> c.children(q1).isEmpty(), () -> "left " + c.children(q1));
        c.check(one.got.equals(sent), "consumed %s, expected %s", one.got, sent);

        // phase 2: two competing consumers
        final String q2 = c.base + "/shared";
        final int n2 = 100;
        Collector a = new Collector(), b = new Collector();
        c.onClose(QueueBuilder.builder(c.client(), a, STRINGS, q2).buildQueue()).start();
        c.onClose(QueueBuilder.builder(c.client(), b, STRINGS, q2).buildQueue()).start();
        DistributedQueue<String> producer2 = c.onClose(QueueBuilder.builder(c.client(), null, STRINGS, q2).buildQueue());
        producer2.start();
        for (int i = 0; i < n2; i++) producer2.put(String.format("job-%03d", i));
        c.check(producer2.flushPuts(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS), "puts not flushed");
        c.waitFor(n2 + " items consumed", () -> a.got.size() + b.got.size() >= n2,
                () -> "consumed " + a.got.size() + "+" + b.got.size() + ", left in the queue " + c.children(q2));
        c.waitFor("the queue to be empty", () -> c.children(q2).isEmpty(), () -> "left " + c.children(q2));
        List<String> all = new ArrayList<>(a.got);
        all.addAll(b.got);
        Map<String, Integer> counts = new HashMap<>();
        for (String s : all) counts.merge(s, 1, Integer::sum);
        for (Map.Entry<String, Integer> e : counts.entrySet()) {
            c.check(e.getValue() == 1, "%s consumed %d times", e.getKey(), e.getValue());
        }
        c.check(all.size() == n2 && counts.size() == n2, "consumed %d items (%d distinct), expected %d",
                all.size(), counts.size(), n2);
    }

    // ------------------------------------------------------------------ DistributedBarrier

    /** A controller sets the barrier; waiters in other sessions block on it
     *  (a timed wait returns false) and are all released when it is
     *  removed -- not before. */
    static void distributedBarrier(Ctx c) throws Exception {
        final String path = c.base + "/barrier";
        new DistributedBarrier(c.client(), path).setBarrier();
        AtomicInteger removed = new AtomicInteger();
        List<Future<Boolean>> fs = new ArrayList<>();
        CountDownLatch blocked = new CountDownLatch(3);
        for (int i = 0; i < 3; i++) {
            DistributedBarrier b = new DistributedBarrier(c.client(), path);
            final String id = "waiter" + i;
            fs.add(c.pool.submit(() -> {
                if (b.waitOnBarrier(200, TimeUnit.MILLISECONDS)) {
                    c.violation("%s passed the barrier while it was set", id);
                }
                blocked.countDown();
                boolean ok = b.waitOnBarrier(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS);
                if (ok && removed.get() == 0) c.violation("%s was released before the barrier was removed", id);
                return ok;
            }));
        }
        c.check(blocked.await(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS), "waiters did not block");
        c.noViolations();
        for (Future<Boolean> f : fs) c.check(!f.isDone(), "a waiter returned while the barrier was set");
        removed.set(1);
        new DistributedBarrier(c.client(), path).removeBarrier();
        for (Future<Boolean> f : fs) c.check(c.join(f, "waiters to be released"), "a waiter's wait timed out");
        c.check(new DistributedBarrier(c.admin, path).waitOnBarrier(1, TimeUnit.MILLISECONDS),
                "a removed barrier still blocks");
    }

    /** Three members: nobody gets past enter() before all three have
     *  entered, nor past leave() before all three have left. */
    static void doubleBarrier(Ctx c) throws Exception {
        final String path = c.base + "/double";
        final int n = 3;
        AtomicInteger entering = new AtomicInteger(), leaving = new AtomicInteger();
        List<DistributedDoubleBarrier> bs = new ArrayList<>();
        for (int i = 0; i < n; i++) bs.add(new DistributedDoubleBarrier(c.client(), path, n));
        List<Future<Void>> fs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            final DistributedDoubleBarrier b = bs.get(i);
            final String id = "member" + i;
            final boolean last = i == n - 1;
            fs.add(c.pool.submit(() -> {
                if (last) {
                    // the last member enters only once the others are waiting
                    c.waitFor("the other members to enter", () -> c.children(path).size() >= n - 1);
                }
                entering.incrementAndGet();
                c.check(b.enter(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS), "%s: enter timed out", id);
                if (entering.get() != n) c.violation("%s passed enter() with %d of %d members", id, entering.get(), n);
                leaving.incrementAndGet();
                c.check(b.leave(Math.max(1, c.remainingMs()), TimeUnit.MILLISECONDS), "%s: leave timed out", id);
                if (leaving.get() != n) c.violation("%s passed leave() with %d of %d members", id, leaving.get(), n);
                return null;
            }));
        }
        for (Future<Void> f : fs) c.join(f, "members to pass the double barrier");
        c.waitFor("member nodes to go", () -> c.children(path).stream().noneMatch(s -> !s.equals("ready")));
    }

    // ------------------------------------------------------------------ PathChildrenCache

    static String ev(String type, String path, byte[] data) {
        return type + " " + path + (data == null ? "" : "=" + str(data));
    }

    /** Waits until events has exactly `expected`, then checks nothing else
     *  arrived. */
    static void expectEvents(Ctx c, List<String> events, List<String> expected, String what) throws Exception {
        c.waitFor(what + ": " + expected.get(expected.size() - 1) + " (have " + events + ")",
                () -> events.size() >= expected.size());
        c.check(events.equals(expected), "%s: events %s, expected %s", what, events, expected);
    }

    /** PathChildrenCache on a parent with two existing children: initial
     *  load, then each add/update/remove done by another client is seen, in
     *  order, with the right data; then bursts of pipelined creates and
     *  deletes are seen exactly once per child. */
    @SuppressWarnings("deprecation")   // PathChildrenCache: deprecated, still widely used
    /** The session id as the server's log writes it, to find its lines there. */
    static String sessionOf(CuratorFramework cf) {
        try {
            return "0x" + Long.toHexString(cf.getZookeeperClient().getZooKeeper().getSessionId());
        } catch (Exception e) {
            return "(unknown: " + e + ")";
        }
    }

    static void pathChildrenCache(Ctx c) throws Exception {
        final String parent = c.base + "/pcc";
        CuratorFramework w = c.client();
        w.create().forPath(parent);
        w.create().forPath(parent + "/a", bytes("a0"));
        w.create().forPath(parent + "/b", bytes("b0"));
        List<String> events = new CopyOnWriteArrayList<>();
        CuratorFramework reader = c.client();
        PathChildrenCache cache = c.onClose(new PathChildrenCache(reader, parent, true));
        cache.getListenable().addListener((client, e) -> {
            switch (e.getType()) {
                case CHILD_ADDED: case CHILD_UPDATED: case CHILD_REMOVED:
                    events.add(ev(e.getType().name(), ZKPaths.getNodeFromPath(e.getData().getPath()), e.getData().getData()));
                    break;
                case INITIALIZED:
                    events.add("INITIALIZED");
                    break;
                default:
                    break;
            }
        });
        cache.start(PathChildrenCache.StartMode.POST_INITIALIZED_EVENT);
        c.waitFor("INITIALIZED", () -> events.contains("INITIALIZED"),
                () -> "events so far " + events + ", cache holds " + cache.getCurrentData()
                        + ", its session " + sessionOf(reader));
        c.check(events.size() == 3 && events.get(2).equals("INITIALIZED")
                && new HashSet<>(events.subList(0, 2)).equals(new HashSet<>(Arrays.asList("CHILD_ADDED a=a0", "CHILD_ADDED b=b0"))),
                "initial events %s", events);
        List<String> expected = new ArrayList<>(events);

        Object[][] steps = {
            {"create", "c", "c0", "CHILD_ADDED c=c0"},
            {"set", "a", "a1", "CHILD_UPDATED a=a1"},
            {"delete", "b", null, "CHILD_REMOVED b=b0"},
            {"set", "c", "c1", "CHILD_UPDATED c=c1"},
            {"set", "c", "c2", "CHILD_UPDATED c=c2"},
            {"create", "b", "b1", "CHILD_ADDED b=b1"},
            {"delete", "a", null, "CHILD_REMOVED a=a1"},
            {"delete", "c", null, "CHILD_REMOVED c=c2"},
        };
        for (Object[] s : steps) {
            String p = parent + "/" + s[1];
            switch ((String) s[0]) {
                case "create": w.create().forPath(p, bytes((String) s[2])); break;
                case "set": w.setData().forPath(p, bytes((String) s[2])); break;
                default: w.delete().forPath(p); break;
            }
            expected.add((String) s[3]);
            expectEvents(c, events, expected, s[0] + " " + s[1]);
        }
        c.check(cache.getCurrentData().size() == 1 && str(cache.getCurrentData(parent + "/b").getData()).equals("b1"),
                "cache holds %s, expected only b=b1", cache.getCurrentData());

        // bursts of pipelined creates, then deletes, from another session:
        // the cache re-sets its watch while they are in flight and must end
        // up with every child, then none, each added and removed exactly once
        final int rounds = 3, burst = 200;
        for (int r = 0; r < rounds; r++) {
            events.clear();
            final int round = r;
            for (int i = 0; i < burst; i++) {
                w.create().inBackground().forPath(String.format("%s/x%d-%03d", parent, r, i), bytes("v" + i));
            }
            c.waitFor("the cache to hold burst " + r, () -> cache.getCurrentData().size() == burst + 1,
                    () -> "it holds " + cache.getCurrentData().size() + " of " + (burst + 1) + " children");
            for (int i = 0; i < burst; i++) {
                w.delete().inBackground().forPath(String.format("%s/x%d-%03d", parent, r, i));
            }
            c.waitFor("the cache to drop burst " + r, () -> cache.getCurrentData().size() == 1,
                    () -> "it still holds " + cache.getCurrentData().size() + " children");
            c.waitFor(2 * burst + " events of burst " + r, () -> events.size() >= 2 * burst,
                    () -> "have " + events.size());
            Set<String> want = new TreeSet<>();
            for (int i = 0; i < burst; i++) {
                want.add(String.format("CHILD_ADDED x%d-%03d=v%d", r, i, i));
                want.add(String.format("CHILD_REMOVED x%d-%03d=v%d", r, i, i));
            }
            List<String> got = new ArrayList<>(events);
            c.check(got.size() == 2 * burst && new TreeSet<>(got).equals(want),
                    "burst %d: %d events, expected each of %d children added and removed once", r, got.size(), burst);
            for (int i = 0; i < burst; i++) {
                String x = String.format("x%d-%03d=v%d", r, i, i);
                c.check(got.indexOf("CHILD_ADDED " + x) < got.indexOf("CHILD_REMOVED " + x),
                        "%s removed before it was added", x);
            }
        }
    }

    // ------------------------------------------------------------------ CuratorCache

    /** CuratorCache (persistent recursive watch) on a subtree: initial load,
     *  then creates/changes/deletes at two levels, each seen in order with
     *  the old and new data; then a burst of creates and deletes seen in
     *  exactly the order they were made. */
    static void curatorCache(Ctx c) throws Exception {
        final String root = c.base + "/cc";
        CuratorFramework w = c.client();
        w.create().forPath(root, bytes("r0"));
        w.create().forPath(root + "/a", bytes("a0"));
        List<String> events = new CopyOnWriteArrayList<>();
        CuratorCache cache = c.onClose(CuratorCache.build(c.client(), root));
        cache.listenable().addListener(new CuratorCacheListener() {
            @Override public void event(Type type, ChildData oldData, ChildData data) {
                String rel = (data != null ? data : oldData).getPath().substring(root.length());
                String old = oldData == null ? "" : str(oldData.getData()) + "->";
                String now = type == Type.NODE_DELETED ? "" : str(data.getData());
                events.add(type.name() + " " + (rel.isEmpty() ? "." : rel) + " " + old + now);
            }
            @Override public void initialized() { events.add("INITIALIZED"); }
        });
        cache.start();
        c.waitFor("INITIALIZED", () -> events.contains("INITIALIZED"));
        c.check(events.equals(Arrays.asList("NODE_CREATED . r0", "NODE_CREATED /a a0", "INITIALIZED"))
                || events.equals(Arrays.asList("NODE_CREATED /a a0", "NODE_CREATED . r0", "INITIALIZED")),
                "initial events %s", events);
        List<String> expected = new ArrayList<>(events);

        Object[][] steps = {
            {"create", "/b", "b0", "NODE_CREATED /b b0"},
            {"set", "/a", "a1", "NODE_CHANGED /a a0->a1"},
            {"create", "/a/x", "x0", "NODE_CREATED /a/x x0"},
            {"set", "/a/x", "x1", "NODE_CHANGED /a/x x0->x1"},
            {"set", "", "r1", "NODE_CHANGED . r0->r1"},
            {"delete", "/a/x", null, "NODE_DELETED /a/x x1->"},
            {"delete", "/b", null, "NODE_DELETED /b b0->"},
            {"create", "/a/y", "y0", "NODE_CREATED /a/y y0"},
            {"delete", "/a/y", null, "NODE_DELETED /a/y y0->"},
        };
        for (Object[] s : steps) {
            String p = root + s[1];
            switch ((String) s[0]) {
                case "create": w.create().forPath(p, bytes((String) s[2])); break;
                case "set": w.setData().forPath(p, bytes((String) s[2])); break;
                default: w.delete().forPath(p); break;
            }
            expected.add((String) s[3]);
            expectEvents(c, events, expected, s[0] + " " + s[1]);
        }
        c.check(cache.size() == 2 && str(cache.get(root + "/a").get().getData()).equals("a1"),
                "cache holds %d nodes, expected . and /a=a1", cache.size());

        // burst: creates then deletes, back to back, under /a
        events.clear();
        final int burst = 20;
        List<String> want = new ArrayList<>();
        for (int i = 0; i < burst; i++) {
            w.create().inBackground().forPath(String.format("%s/a/z%02d", root, i), bytes("v" + i));
            want.add(String.format("NODE_CREATED /a/z%02d v%d", i, i));
        }
        c.waitFor("the cache to hold the burst", () -> cache.size() == burst + 2);
        for (int i = 0; i < burst; i++) {
            w.delete().inBackground().forPath(String.format("%s/a/z%02d", root, i));
            want.add(String.format("NODE_DELETED /a/z%02d v%d->", i, i));
        }
        c.waitFor("the cache to drop the burst", () -> cache.size() == 2);
        c.waitFor(2 * burst + " burst events", () -> events.size() >= 2 * burst);
        c.check(events.equals(want), "burst events %s, expected %s", events, want);
    }
}

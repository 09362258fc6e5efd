/*
 * Starts one OpenSearch node in this JVM, for sluice's real-server tests.
 *
 *   java -cp 'classes:lib/*' SluiceOpenSearch HOME [setting=value ...]
 *
 * HOME gets config/ data/ logs/ modules/ plugins/; a restart on the same HOME keeps the data.
 * Settings after HOME are node settings (http.port=..., thread_pool.write.size=1, ...). Prints
 * "sluice-opensearch: started http=HOST:PORT" once HTTP accepts requests, and runs until SIGTERM
 * (a clean close) or SIGKILL.
 *
 * This is how the server's own test framework starts a node (MockNode): the protected Node
 * constructor takes the plugin classes from the class path, so the modules need no plugin
 * descriptors. Not run this way: bootstrap checks, the security manager, JarHell.
 */
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public final class SluiceOpenSearch {
    /* HTTP (Netty4) and the modules the tests use: ingest processors, analyzers, extra field
     * types, painless for scripted processors. */
    private static final String[] PLUGINS = {
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.ingest.common.IngestCommonPlugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.painless.PainlessPlugin",
    };

    private static final class LaunchedNode extends Node {
        LaunchedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }

        /* Node's version registers a listener that sets the log4j node-id fields, which needs
         * the server's own logging set-up (not done here). */
        @Override
        protected void configureNodeAndClusterIdStateListener(ClusterService clusterService) {}
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: SluiceOpenSearch HOME [setting=value ...]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        for (String d : new String[] {"config", "data", "logs", "modules", "plugins"})
            Files.createDirectories(home.resolve(d));
        Settings.Builder settings = Settings.builder()
            .put("path.home", home.toString())
            .put("cluster.name", "sluice-test")
            .put("node.name", "node-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("node.portsfile", true)
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("not a setting=value: " + args[i]);
                System.exit(2);
            }
            settings.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGINS)
            plugins.add(Class.forName(name).asSubclass(Plugin.class));
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings.build(), Collections.emptyMap(), home.resolve("config"), () -> "node-1");
        Node node = new LaunchedNode(env, plugins);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        node.start();
        HttpServerTransport http = node.injector().getInstance(HttpServerTransport.class);
        System.out.println("sluice-opensearch: started http="
                           + http.boundAddress().publishAddress());
        System.out.flush();
        /* the node's threads are daemons: keep the JVM alive until a signal */
        Thread.currentThread().join();
    }
}

<?php
// The application. Like a PHP framework on a server, it compiles its templates into a cache
// directory under the code by default; on Lambda the code (/var/task) is read-only, so that fails
// until APP_CACHE_DIR points the cache at /tmp (as Bref's documentation says to do).

$cacheDir = getenv('APP_CACHE_DIR') ?: __DIR__ . '/var/cache';

return function (array $event, array $context) use ($cacheDir): array {
    $compiled = "$cacheDir/greeting.php";
    $fresh = !is_file($compiled);
    if ($fresh) {
        if (!is_dir($cacheDir)) {
            mkdir($cacheDir, 0777, true);
        }
        file_put_contents($compiled, '<?php return "Hello, %s!";');
    }
    $template = require $compiled;
    return ['greeting' => sprintf($template, $event['name'] ?? 'world'), 'cache' => $compiled,
            'compiled_now' => $fresh, 'pid' => getmypid()];
};

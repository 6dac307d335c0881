<?php
// A Bref-style PHP runtime (after brefphp/bref src/Runtime/LambdaRuntime.php): php-curl on Lambda's
// Runtime API. It loads the handler file named by _HANDLER, which returns a callable.

$api = 'http://' . getenv('AWS_LAMBDA_RUNTIME_API') . '/2018-06-01/runtime';

set_error_handler(function (int $severity, string $message, string $file, int $line): bool {
    throw new ErrorException($message, 0, $severity, $file, $line);
});

function call(string $method, string $url, ?string $body = null, array $headers = []): array
{
    $received = [];
    $handle = curl_init($url);
    curl_setopt($handle, CURLOPT_CUSTOMREQUEST, $method);
    curl_setopt($handle, CURLOPT_RETURNTRANSFER, true);
    curl_setopt($handle, CURLOPT_FAILONERROR, true);
    curl_setopt($handle, CURLOPT_HEADERFUNCTION, function ($h, string $line) use (&$received): int {
        if (strpos($line, ':') !== false) {
            [$name, $value] = explode(':', $line, 2);
            $received[strtolower(trim($name))] = trim($value);
        }
        return strlen($line);
    });
    if ($body !== null) {
        curl_setopt($handle, CURLOPT_POSTFIELDS, $body);
        $headers[] = 'Content-Type: application/json';
        $headers[] = 'Content-Length: ' . strlen($body);
    }
    curl_setopt($handle, CURLOPT_HTTPHEADER, $headers);
    $answer = curl_exec($handle);
    if ($answer === false) {
        throw new RuntimeException("Runtime API $method $url failed: " . curl_error($handle));
    }
    curl_close($handle);
    return [$received, $answer];
}

function error_body(Throwable $e): string
{
    return json_encode([
        'errorType' => get_class($e),
        'errorMessage' => $e->getMessage(),
        'stackTrace' => explode("\n", $e->getTraceAsString()),
    ]);
}

try {
    $handler = require getenv('LAMBDA_TASK_ROOT') . '/' . getenv('_HANDLER');
} catch (Throwable $e) {
    echo "Fatal error: " . $e->getMessage() . "\n";
    call('POST', "$api/init/error", error_body($e), ['Lambda-Runtime-Function-Error-Type: Runtime.UnknownReason']);
    exit(1);
}

$loops = (int) (getenv('BREF_LOOP_MAX') ?: 1);
for ($i = 0; $i < $loops; $i++) {
    [$headers, $event] = call('GET', "$api/invocation/next");
    $id = $headers['lambda-runtime-aws-request-id'];
    $context = ['awsRequestId' => $id, 'deadlineMs' => (int) $headers['lambda-runtime-deadline-ms']];
    try {
        $result = $handler(json_decode($event, true), $context);
        call('POST', "$api/invocation/$id/response", json_encode($result));
    } catch (Throwable $e) {
        echo "$id\tInvoke Error\t" . error_body($e) . "\n";
        call('POST', "$api/invocation/$id/error", error_body($e));
    }
}

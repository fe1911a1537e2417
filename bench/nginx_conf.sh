# Sourced by the benchmarks that compare with nginx. nginx_conf DIR LISTEN_PORT UPSTREAM_PORT
# FIRST_LINE writes DIR/nginx.conf: a keep-alive proxy_pass to 127.0.0.1:UPSTREAM_PORT, no access
# log and no buffering (semrouter logs nothing per request and relays as it reads), its pid, log
# and temporary files in DIR. FIRST_LINE is the process model, e.g. "worker_processes 2;", or
# "master_process off; daemon off;" for one process that callgrind can watch.
nginx_conf() {
  local dir=$1 port=$2 upstream=$3 first=$4
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<NGX
$first
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  upstream mock { server 127.0.0.1:$upstream; keepalive 128; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGX
}
# start_nginx WORKERS: nginx_conf's proxy to the mock ($MOCK) with WORKERS worker processes, in
# $WORK/nginx, stopped with the script ($PIDS, bench/lib.sh); sets NGINX_PORT.
start_nginx() {
  NGINX_PORT=$(free_port)
  nginx_conf "$WORK/nginx" "$NGINX_PORT" "$MOCK" "worker_processes $1;"
  nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
}

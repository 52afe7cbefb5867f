# nginx as a TLS test server for the lab scripts (sourced).

# start_nginx DIR PORT PKI: serves DIR/html over TLS (PKI/server.pem, TLS 1.2 and 1.3) on
# 127.0.0.1:PORT, in the foreground of a background job whose pid is added to `pids`; its
# config, logs and temp files stay under DIR.
start_nginx() {
  local dir=$1 port=$2 pki=$3
  mkdir -p "$dir/html"
  cat >"$dir/nginx.conf" <<NGINX
daemon off;
master_process off;
user root;
error_log $dir/error.log;
pid $dir/nginx.pid;
events {}
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $dir/html;
  }
}
NGINX
  nginx -c "$dir/nginx.conf" -p "$dir" 2>"$dir/stderr" &
  pids+=($!)
}
